package tracing

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace endpoint on loopback that keeps what
// it receives.
type otlpReceiver struct {
	mu       sync.Mutex
	requests []*collector.ExportTraceServiceRequest
}

func startReceiver(t *testing.T) (*otlpReceiver, string) {
	r := &otlpReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var export collector.ExportTraceServiceRequest
		if req.URL.Path != "/v1/traces" || proto.Unmarshal(body, &export) != nil {
			http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.requests = append(r.requests, &export)
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// spans lists the names of the spans received, by service.name.
func (r *otlpReceiver) spans() map[string][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]string{}
	for _, export := range r.requests {
		for _, rs := range export.ResourceSpans {
			service := ""
			for _, kv := range rs.Resource.Attributes {
				if kv.Key == "service.name" {
					service = kv.Value.GetStringValue()
				}
			}
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					out[service] = append(out[service], s.Name)
				}
			}
		}
	}
	return out
}

func TestSetupExportsOverOTLPHTTP(t *testing.T) {
	for _, tc := range []struct{ serviceEnv, want string }{{"", ServiceName}, {"memory-writer", "memory-writer"}} {
		t.Run(tc.want, func(t *testing.T) {
			r, url := startReceiver(t)
			t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
			t.Setenv("OTEL_SERVICE_NAME", tc.serviceEnv)
			before := otel.GetTracerProvider()
			t.Cleanup(func() { otel.SetTracerProvider(before) })
			tp, shutdown, err := Setup(context.Background(), true, zerolog.Nop())
			if err != nil || tp == nil {
				t.Fatalf("Setup: %v, %v", tp, err)
			}
			if otel.GetTracerProvider() != tp {
				t.Error("the global tracer provider is not the one Setup returned")
			}
			_, span := tp.Tracer("test").Start(context.Background(), "a write")
			span.End()
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := r.spans(); len(got[tc.want]) != 1 || got[tc.want][0] != "a write" {
				t.Fatalf("received %v, want the span under service %q", got, tc.want)
			}
		})
	}
}

func TestSetupOffLeavesTheNoopProvider(t *testing.T) {
	before := otel.GetTracerProvider()
	for _, tc := range []struct {
		name     string
		enabled  bool
		disabled string
	}{{"switch off", false, ""}, {"OTEL_SDK_DISABLED", true, "true"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OTEL_SDK_DISABLED", tc.disabled)
			tp, shutdown, err := Setup(context.Background(), tc.enabled, zerolog.Nop())
			if err != nil || tp != nil {
				t.Fatalf("Setup: %v, %v; want no provider", tp, err)
			}
			if otel.GetTracerProvider() != before {
				t.Fatal("Setup replaced the global tracer provider")
			}
			if err := shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSetupRefusesBadSettingsByName(t *testing.T) {
	for _, tc := range []struct{ name, value, allowed string }{
		{"OTEL_TRACES_EXPORTER", "zipkin", "otlp, none"},
		{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"},
		{"OTEL_TRACES_SAMPLER", "sometimes", "parentbased_traceidratio"},
		{"OTEL_RESOURCE_ATTRIBUTES", "service.name", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.name, tc.value)
			_, _, err := Setup(context.Background(), true, zerolog.Nop())
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.allowed) {
				t.Fatalf("err %v, want ErrConfig naming %s and %q", err, tc.name, tc.allowed)
			}
		})
	}
	t.Run("OTEL_TRACES_SAMPLER_ARG", func(t *testing.T) {
		t.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
		t.Setenv("OTEL_TRACES_SAMPLER_ARG", "1.5")
		if _, _, err := Setup(context.Background(), true, zerolog.Nop()); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "OTEL_TRACES_SAMPLER_ARG") {
			t.Fatalf("err %v, want ErrConfig naming OTEL_TRACES_SAMPLER_ARG", err)
		}
	})
}

func TestSetupSamplesByOTELTracesSampler(t *testing.T) {
	_, url := startReceiver(t)
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
	t.Setenv("OTEL_TRACES_SAMPLER", "always_off")
	before := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(before) })
	tp, shutdown, err := Setup(context.Background(), true, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if _, span := tp.Tracer("test").Start(context.Background(), "a write"); span.IsRecording() {
		t.Fatal("always_off recorded a span")
	}
}
