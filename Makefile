# The two commands a new user needs: 'make run' and 'make test'.
GO ?= go

.PHONY: run test lint fuzz build scenarios chaos conformance

run:
	$(GO) run ./cmd/jetbox run

# The short fault campaign (about 90 s) runs with the tests; make chaos
# runs the long one. The Helm chart's render test is a Go module of its
# own (deploy/helm), run without the race detector.
test:
	JETBOX_CHAOS=60s $(GO) test -race -count=1 -timeout 12m ./...
	$(MAKE) helm-test

# The SFM conformance suite (docs/CONFORMANCE.md) against a real
# SomaFractalMemory: make conformance SFM_URL=http://host:9595 SFM_TOKEN=…
# (SFM_TOKEN_TENANT= when its token names no tenant; SFM_VECTOR_SEARCH=1
# when it has Milvus). make test runs it against the development memory API.
conformance:
	@test -n "$(SFM_URL)" || { echo "set SFM_URL (and SFM_TOKEN) to the SomaFractalMemory to test"; exit 2; }
	SFM_URL='$(SFM_URL)' SFM_TOKEN='$(SFM_TOKEN)' $(GO) test -count=1 -v -run '^TestSFM$$' ./internal/sfmconformance/

build:
	$(GO) build -o bin/jetbox ./cmd/jetbox

# staticcheck at the version the Go module proxy serves here.
STATICCHECK_VERSION ?= v0.8.2

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@if command -v docker-compose >/dev/null 2>&1; then JETBOX_WORKER_PASSWORD=x TENANT_SANDBOX_TENANT_PASSWORD=x TENANT_ACME_EU_PASSWORD=x NATS_SYS_PASSWORD=x SOMABRAIN_MEMORY_HTTP_TOKEN=x docker-compose -f docker-compose.yml config -q && echo "docker-compose.yml: valid (with example secrets)"; \
	 else echo "docker-compose not installed: skipping the compose check (apt-get install docker-compose)"; fi
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# Longer fuzzing than the seed-corpus runs inside 'make test'.
FUZZTIME ?= 60s
fuzz:
	@grep -rHoE '^func Fuzz[A-Za-z0-9_]+' --include='*_test.go' . | sort | while IFS=: read -r file fn; do \
		name=$${fn#func }; pkg=./$$(dirname "$${file#./}"); \
		echo "== $$pkg $$name"; \
		$(GO) test "$$pkg" -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) || exit 1; \
	done

# Drives jetbox on loopback through the consumption scenarios and prints
# their figures (docs/SCENARIOS.md). SCALE=0.1 for a quick run;
# ONLY=order,isolation for some of them; RUNS=3 for medians of three runs;
# WINDOWS=5s for isolation's and fairness's latency by 5 s of publishing.
SCALE ?= 1
ONLY ?=
RUNS ?=
WINDOWS ?=
scenarios:
	$(GO) run ./cmd/scenarios -scale $(SCALE) $(if $(ONLY),-only $(ONLY)) $(if $(RUNS),-runs $(RUNS)) $(if $(WINDOWS),-windows $(WINDOWS))

# The fault campaign (docs/RELIABILITY.md): a 3-node cluster, 3 workers,
# a misbehaving memory API; CHAOS=60s for a short run.
CHAOS ?= 5m
chaos:
	JETBOX_CHAOS=$(CHAOS) $(GO) test -count=1 -v -timeout 20m -run TestChaos ./chaos/

# Measures jetbox against raw NATS, the memory API alone and Watermill on
# loopback and prints one table of figures, baselines, ratios and verdicts;
# results.json and charts.html go to bench-results/. BENCHSCALE=0.1 for a
# quick run; BENCHONLY=raw,fast_ack for some phases.
# BENCHFLAGS passes more flags, such as -instant-api.
BENCHSCALE ?= 1
BENCHONLY ?=
BENCHFLAGS ?=
.PHONY: bench bench-targets
bench:
	$(GO) run ./cmd/bench -scale $(BENCHSCALE) $(if $(BENCHONLY),-only $(BENCHONLY)) $(BENCHFLAGS)

# The figures the performance targets are judged on (docs/BENCHMARKS.md,
# "Results"), with a memory API that answers at once: the drain like for
# like (its ceiling, the bare floor, jetbox, Watermill), sync and the front
# door from one caller. About 70 s; run it three times for the spread.
bench-targets:
	$(GO) run ./cmd/bench -scale $(BENCHSCALE) -instant-api -only http,fast_ack,frontdoor,sync,drain,watermill $(BENCHFLAGS)

# jetbox relay under SIGKILL: 10,000 rows of SomaBrain's outbox over 50
# tenants, drained by two relay processes at once, one of them killed
# twice during the backfill (and replaced); every row
# ends sent or failed and the memory API sees each write once. Needs
# PostgreSQL (initdb, pg_ctl).
.PHONY: relay-soak
relay-soak:
	JETBOX_RELAY_SOAK=1 $(GO) test -count=1 -v -timeout 15m -run TestRelaySurvivesSIGKILL ./cmd/jetbox/

# Renders the Helm chart (deploy/helm/jetbox) with Helm's own engine and
# checks it. A Go module of its own, deploy/helm/go.mod, so that Helm and
# the Kubernetes libraries it brings stay out of jetbox's go.mod; 'make
# test' runs it without the race detector (docs/OPERATIONS.md).
.PHONY: helm-test
helm-test:
	cd deploy/helm && $(GO) test -count=1 ./...
