package frontdoor_test

import (
	"testing"

	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/internal/sfmconformance"
)

// The SomaFractalMemory conformance suite, run through the front door in
// sync mode, gets the answers SFM gives: writes go through the outbox and
// a worker to the development memory API, reads are proxied to it. The
// one known difference: the front door takes coordinates of three decimal
// numbers only (jetbox's contract), where SFM takes any number.
func TestConformanceSuiteThroughTheFrontDoor(t *testing.T) {
	h := newHarness(t, options{worker: true, frontdoor: frontdoor.Config{
		DefaultTenant: "default", // SFM's tenant of a request that names none
		Tokens:        frontdoor.Tokens{Service: callerToken},
	}})
	sfmconformance.RunTarget(t, sfmconformance.Target{URL: h.url, Token: callerToken, ThreeNumberCoordinates: true})
}
