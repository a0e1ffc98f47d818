package consumer

import (
	"github.com/jetbox-dev/jetbox/consumer/internal/memclient"
	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
)

// newMemoryAPI is the memory API client cfg describes, its calls timed in
// jetbox_memory_api_request_duration_seconds when cfg has a Registerer.
func newMemoryAPI(cfg Config) *memclient.Client {
	return memclient.New(memclient.Config{
		Endpoint: cfg.Endpoint, Token: cfg.Token, HTTPClient: cfg.HTTPClient,
		Concurrency: cfg.Concurrency, Timeout: cfg.RequestTimeout,
		Observe: telemetry.NewAPIDurations(cfg.Registerer).Observe,
	})
}
