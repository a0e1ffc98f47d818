// Package telemetry is what a worker tells about its writes: its Prometheus
// metrics (Metrics, with the tenant label's cardinality bounded, and
// APIDurations, the memory API calls' histogram) and its OpenTelemetry spans
// (Tracer): a process span for each delivery of a write, which records its
// retries, deferrals and outcome, and a client span for each memory API
// call, whose trace context the memory API receives.
//
// Metric names, help texts and labels, span names and attributes are part of
// jetbox's interface: alert rules, dashboards and trace queries rely on
// them. A nil *Tracer, *ProcessSpan or *APIDurations does nothing and
// allocates nothing, so the delivery policy calls them whether tracing and
// metrics are on or not.
package telemetry
