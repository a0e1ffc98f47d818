// Package limits holds the front door's defaults, in a package of their
// own so that jetbox's configuration can refer to them without importing
// the front door (which imports the producer, whose tests import the
// configuration).
package limits

import "time"

// Defaults of the front door's settings.
const (
	Listen         = "127.0.0.1:9596"
	MaxBodyBytes   = 1 << 20
	MaxHeaderBytes = 64 << 10
	MaxConcurrent  = 512
	ReadTimeout    = 30 * time.Second
	IdleTimeout    = 120 * time.Second
)
