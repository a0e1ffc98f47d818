// Package tracing sets up OpenTelemetry tracing for jetbox's commands from
// the standard OTEL_* environment variables. Tracing is off unless
// SOMABRAIN_OUTBOX_TRACING turns it on; off, the global tracer provider
// stays OpenTelemetry's no-op one and the producer and the workers are
// given none, so they make no spans at all.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// ServiceName is the service.name of jetbox's spans unless OTEL_SERVICE_NAME
// (or service.name in OTEL_RESOURCE_ATTRIBUTES) names another.
const ServiceName = "jetbox"

// ErrConfig is wrapped by every error in the OTEL_* variables.
var ErrConfig = errors.New("invalid tracing configuration")

// Setup turns tracing on when enabled is true and OTEL_SDK_DISABLED is not
// "true": it installs a tracer provider that exports with OTLP over
// HTTP/protobuf (OTEL_EXPORTER_OTLP_ENDPOINT and the exporter's other
// variables), samples by OTEL_TRACES_SAMPLER, and propagates W3C trace
// context. It returns that provider, to hand to the producer and the
// workers, or nil when tracing is off; shutdown flushes the spans not yet
// exported and is safe to call either way.
func Setup(ctx context.Context, enabled bool, log zerolog.Logger) (tp trace.TracerProvider, shutdown func(context.Context) error, err error) {
	shutdown = func(context.Context) error { return nil }
	if !enabled || strings.EqualFold(strings.TrimSpace(os.Getenv("OTEL_SDK_DISABLED")), "true") {
		return nil, shutdown, nil
	}
	if err := checkEnv(); err != nil {
		return nil, shutdown, err
	}
	if exporter := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); exporter == "none" {
		return nil, shutdown, nil
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return nil, shutdown, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	// OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES come after the
	// default name, and win over it.
	res, err := resource.New(ctx, resource.WithAttributes(semconv.ServiceName(ServiceName)), resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, shutdown, fmt.Errorf("tracing: resource: %w", err)
	}
	// The SDK reads OTEL_TRACES_SAMPLER(_ARG) and OTEL_BSP_* itself.
	provider := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn().Err(err).Msg("tracing")
	}))
	log.Info().Str("exporter", "otlp").Msg("tracing on")
	return provider, provider.Shutdown, nil
}

// Samplers OTEL_TRACES_SAMPLER may name: those the SDK implements.
var samplers = []string{"always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"}

// checkEnv refuses what the SDK would otherwise only log and ignore, so
// that a typo does not leave tracing silently other than configured.
func checkEnv() error {
	if exporter := strings.TrimSpace(os.Getenv("OTEL_TRACES_EXPORTER")); exporter != "" && exporter != "otlp" && exporter != "none" {
		return fmt.Errorf("%w: OTEL_TRACES_EXPORTER %q (allowed: otlp, none)", ErrConfig, exporter)
	}
	for _, name := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		if p := strings.TrimSpace(os.Getenv(name)); p != "" && p != "http/protobuf" {
			return fmt.Errorf("%w: %s %q (allowed: http/protobuf)", ErrConfig, name, p)
		}
	}
	sampler := strings.ToLower(strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER")))
	known := sampler == ""
	for _, s := range samplers {
		known = known || s == sampler
	}
	if !known {
		return fmt.Errorf("%w: OTEL_TRACES_SAMPLER %q (allowed: %s)", ErrConfig, sampler, strings.Join(samplers, ", "))
	}
	if arg := strings.TrimSpace(os.Getenv("OTEL_TRACES_SAMPLER_ARG")); arg != "" && strings.HasSuffix(sampler, "traceidratio") {
		if r, err := strconv.ParseFloat(arg, 64); err != nil || r < 0 || r > 1 {
			return fmt.Errorf("%w: OTEL_TRACES_SAMPLER_ARG %q (allowed: a ratio from 0 to 1)", ErrConfig, arg)
		}
	}
	if _, err := resource.New(context.Background(), resource.WithFromEnv()); err != nil {
		return fmt.Errorf("%w: OTEL_RESOURCE_ATTRIBUTES: %v", ErrConfig, err)
	}
	return nil
}
