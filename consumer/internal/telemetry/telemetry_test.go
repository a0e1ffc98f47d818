package telemetry

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/jetbox-dev/jetbox/streams"
)

// The first tenants up to the budget keep their own label for good; every
// later one shares OtherTenants.
func TestTenantLabelIsBoundedByTheBudget(t *testing.T) {
	m := NewMetrics(nil, 2)
	for _, c := range []struct{ tenant, want string }{
		{"a", "a"}, {"b", "b"}, {"c", OtherTenants}, {"a", "a"}, {"d", OtherTenants}, {"b", "b"},
	} {
		if got := m.TenantLabel(c.tenant); got != c.want {
			t.Errorf("TenantLabel(%q) = %q, want %q", c.tenant, got, c.want)
		}
	}
}

// A memory API call is counted under its op and the hundreds of its
// status; a call without a usable answer under error.
func TestAPIDurationsByOpAndStatusClass(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := NewAPIDurations(reg)
	d.Observe(streams.OpStore, 200, 0.01)
	d.Observe(streams.OpStore, 503, 0.01)
	d.Observe(streams.OpDelete, 0, 0.01)
	d.Observe(streams.OpLink, 99, 0.01)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			var op, class string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "op":
					op = l.GetValue()
				case "status_class":
					class = l.GetValue()
				}
			}
			if n := m.GetHistogram().GetSampleCount(); n > 0 {
				got[f.GetName()+" "+op+" "+class] = n
			}
		}
	}
	const name = "jetbox_memory_api_request_duration_seconds"
	want := map[string]uint64{name + " store 2xx": 1, name + " store 5xx": 1, name + " delete error": 1, name + " link error": 1}
	if len(got) != len(want) {
		t.Fatalf("observations %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s: %d observations, want %d", k, got[k], n)
		}
	}
}

// With tracing and the histogram off, what the delivery policy calls for
// every write allocates nothing.
func TestOffAllocatesNothing(t *testing.T) {
	var tracer *Tracer
	var durations *APIDurations
	ctx := context.Background()
	allocs := testing.AllocsPerRun(100, func() {
		_, span := tracer.StartProcess(ctx, Delivery{Mode: streams.ModeFastAck})
		span.SetOutcome(OutcomeApplied)
		span.Stepped(Again, 1, time.Second)
		span.End()
		durations.Observe(streams.OpStore, 200, 0.01)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write with tracing off, want 0", allocs)
	}
	if NewTracer(nil) != nil {
		t.Fatal("NewTracer(nil) is a tracer, want nil (off)")
	}
}

// A memory API call's span is named after the route, carries no
// credentials, and its trace context replaces the write's in the request;
// a call without an answer ends in error with what describe makes of it.
func TestMemoryAPICallSpan(t *testing.T) {
	spans := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(spans))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tracer := NewTracer(tp)
	var got http.Header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.WriteHeader(http.StatusNotFound)
	}))
	defer srv.Close()
	base, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	base.User = url.UserPassword("jetbox", "secret-9c1e")
	errDescribed := errors.New("described")
	send := tracer.TraceCalls(http.DefaultTransport.RoundTrip, func(error) error { return errDescribed })

	req, _ := http.NewRequest(http.MethodDelete, base.String()+"/memories/1,2", nil)
	req.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("Tracestate", "vendor=1")
	resp, err := send(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	s := spans.GetSpans()[0]
	if s.Name != "DELETE /memories/{coord}" || s.Status.Code != codes.Error {
		t.Errorf("span %q, status %v; want DELETE /memories/{coord}, an error", s.Name, s.Status)
	}
	for _, kv := range s.Attributes {
		if strings.Contains(kv.Value.String(), "secret-9c1e") {
			t.Errorf("span attribute %s carries the password", kv.Key)
		}
		if kv.Key == "url.template" && kv.Value.AsString() != "/memories/{coord}" || kv.Key == "error.type" && kv.Value.AsString() != "404" {
			t.Errorf("span attribute %s = %q", kv.Key, kv.Value.String())
		}
	}
	if want := "00-" + s.SpanContext.TraceID().String() + "-" + s.SpanContext.SpanID().String() + "-01"; got.Get("Traceparent") != want || got.Get("Tracestate") != "" {
		t.Errorf("the memory API got traceparent %q, tracestate %q; want %q and none", got.Get("Traceparent"), got.Get("Tracestate"), want)
	}

	srv.Close()
	spans.Reset()
	req, _ = http.NewRequest(http.MethodPost, srv.URL+"/memories", nil)
	if _, err := send(req); err == nil {
		t.Fatal("a call to a closed server succeeded")
	}
	if s := spans.GetSpans()[0]; s.Name != "POST /memories" || s.Status.Code != codes.Error || s.Status.Description != "described" {
		t.Errorf("span %q, status %v; want POST /memories, an error described", s.Name, s.Status)
	}
}
