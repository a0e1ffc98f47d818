package sfmconformance_test

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/jetbox-dev/jetbox/internal/memapi"
	"github.com/jetbox-dev/jetbox/internal/sfmconformance"
)

const token = "conformance-token"

// startDevAPI serves a fresh development memory API on loopback.
func startDevAPI(t *testing.T, opts memapi.Options) string {
	t.Helper()
	opts.Path = filepath.Join(t.TempDir(), "memapi.db")
	store, err := memapi.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	srv := httptest.NewServer(store.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// The development memory API configured as SFM in standalone mode (the
// token's context names the tenant "standalone") answers as SFM does.
func TestDevelopmentMemoryAPIAsStandaloneSFM(t *testing.T) {
	url := startDevAPI(t, memapi.Options{Token: token, TokenTenant: sfmconformance.StandaloneTenant})
	sfmconformance.Run(t, url, token)
}

// As jetbox runs it, the token names no tenant: X-Soma-Tenant, then
// "default", decides, as SFM does for a context without a tenant.
func TestDevelopmentMemoryAPIScopedByHeader(t *testing.T) {
	url := startDevAPI(t, memapi.Options{Token: token})
	sfmconformance.RunTarget(t, sfmconformance.Target{URL: url, Token: token})
}

// TestSFM runs the suite against a real SomaFractalMemory:
//
//	make conformance SFM_URL=http://127.0.0.1:9595 SFM_TOKEN=… [SFM_TOKEN_TENANT=standalone] [SFM_VECTOR_SEARCH=1]
func TestSFM(t *testing.T) {
	url := os.Getenv("SFM_URL")
	if url == "" {
		t.Skip("SFM_URL is not set: no SomaFractalMemory to test (make conformance SFM_URL=… SFM_TOKEN=…)")
	}
	tenant, set := os.LookupEnv("SFM_TOKEN_TENANT")
	if !set {
		tenant = sfmconformance.StandaloneTenant
	}
	sfmconformance.RunTarget(t, sfmconformance.Target{
		URL: url, Token: os.Getenv("SFM_TOKEN"), TokenTenant: tenant,
		RanksByVectors: os.Getenv("SFM_VECTOR_SEARCH") == "1",
	})
}
