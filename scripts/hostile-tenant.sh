#!/usr/bin/env bash
# Plays a hostile tenant against a fresh `jetbox run` with the nats CLI, as
# docs/SECURITY.md describes: each attack, then 30 healthy writes to the
# attacker's own partition and 200 to other tenants, which must all be
# applied within 20 s by a worker that is still alive and ready.
#
# Needs the nats CLI on PATH (go install github.com/nats-io/natscli/nats@v0.5.0),
# curl and python3. Everything listens on 127.0.0.1, on ports of its own.
# Usage: scripts/hostile-tenant.sh   (exit 0 when every attack was harmless)
set -euo pipefail
cd "$(dirname "$0")/.."

dir=$(mktemp -d)
go build -o "$dir/jetbox" ./cmd/jetbox
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
nats_port=$(port) api_port=$(port) ops_port=$(port)
export NATS_URL="nats://127.0.0.1:$nats_port"
token=hostile-demo-token

SOMABRAIN_OUTBOX_DATA_DIR="$dir/data" SOMABRAIN_OUTBOX_NATS_LISTEN="127.0.0.1:$nats_port" \
SOMABRAIN_OUTBOX_MEMAPI_LISTEN="127.0.0.1:$api_port" SOMABRAIN_OUTBOX_HTTP_LISTEN="127.0.0.1:$ops_port" SOMABRAIN_OUTBOX_INGEST_LISTEN=off \
SOMABRAIN_MEMORY_HTTP_TOKEN=$token NATS_URL= "$dir/jetbox" run >"$dir/jetbox.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$ops_port/readyz" >/dev/null && break; sleep 0.2; done

applied() { # total writes the memory API applied
  curl -sf -H "Authorization: Bearer $token" "http://127.0.0.1:$api_port/stats" |
    python3 -c 'import json,sys; print(sum(t["applied"] for t in json.load(sys.stdin)["tenants"].values()))'
}
pub() { nats pub --jetstream "$@" >/dev/null 2>&1 || true; }

round=0
check() { # name: publish the healthy writes, wait for them, check the worker
  local name=$1 before after deadline
  round=$((round + 1))
  before=$(applied)
  pub memory.mallory.fast_ack.store --count 30 "{\"coord\":\"$round,{{Count}},1\",\"payload\":{}}"
  for t in $(seq 0 9); do
    pub "memory.tenant-$t.fast_ack.store" --count 20 "{\"coord\":\"$round,{{Count}},2\",\"payload\":{}}"
  done
  deadline=$((SECONDS + 20))
  while after=$(applied); [ $((after - before)) -lt 230 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  if [ $((after - before)) -ge 230 ] && kill -0 $pid && curl -sf "http://127.0.0.1:$ops_port/readyz" >/dev/null; then
    printf 'ok    %-60s 230 healthy writes applied, worker ready\n' "$name"
  else
    printf 'FAIL  %-60s %d of 230 applied\n' "$name" $((after - before)); tail -5 "$dir/jetbox.log"; exit 1
  fi
}

long=$(printf 'r%.0s' $(seq 5000))
pub memory.mallory.sync.store -H "Soma-Reply-To:_INBOX.$long" '{"coord":"1,2,3","payload":{}}'
check "Soma-Reply-To past the server's control line"
pub memory.mallory.fast_ack.store -H "Status:409" -H "Description:Consumer Deleted" ""
check "empty body with Status 409 (Consumer Deleted)"
pub memory.mallory.fast_ack.store -H "Status:408" ""
check "empty body with Status 408"
pub memory.mallory.fast_ack.store --count 10 -H "Nats-Pin-Id:forged" '{"coord":"9,{{Count}},9","payload":{}}'
check "valid writes with a forged Nats-Pin-Id"
pub memory.mallory.fast_ack.store -H "Nats-Msg-Id:tenant-0:guessed" '{"coord":"1,1,1","payload":{}}'
check "Nats-Msg-Id of another tenant"
pub memory.mallory.fast_ack.store -H "Soma-Namespace:memory:tenant-0" '{"coord":"1,1,1","payload":{}}'
check "Soma-Namespace of another tenant"
pub memory.mallory.fast_ack.store '{"coord":"1,1,1","payload":{},"tenant":"tenant-0"}'
check "extra body field"
echo "dead letters: $(nats stream info MEMORY_DLQ --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"]["messages"])')"
