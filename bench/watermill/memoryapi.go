package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxAnswer bounds how much of an answer is read, as in jetbox's worker.
const maxAnswer = 1 << 20

// memoryAPI stores memories with the request jetbox's worker makes for a
// store: POST /memories with the body as published, the tenant and the
// idempotency key in headers, and the bearer token when there is one.
type memoryAPI struct {
	endpoint string
	auth     string
	client   *http.Client
}

// newMemoryAPI keeps one idle keep-alive connection per handler that can
// be running, so no call waits for a new connection once all are open.
func newMemoryAPI(base, token string, concurrency int) *memoryAPI {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns = concurrency
	transport.MaxIdleConnsPerHost = concurrency
	auth := ""
	if token != "" {
		auth = "Bearer " + token
	}
	return &memoryAPI{
		endpoint: strings.TrimRight(base, "/") + "/memories",
		auth:     auth,
		client:   &http.Client{Transport: transport, Timeout: requestTimeout},
	}
}

// store makes one attempt; any answer but a 2xx is an error, so that the
// router retries the message and, failing that, nacks it.
func (m *memoryAPI) store(ctx context.Context, tenant, idempotencyKey string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if m.auth != "" {
		req.Header.Set("Authorization", m.auth)
	}
	req.Header.Set("X-Soma-Tenant", tenant)
	req.Header.Set("X-Idempotency-Key", idempotencyKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := m.client.Do(req)
	if err != nil {
		return withoutURL(err)
	}
	defer resp.Body.Close()
	// Read the answer to its end, or the connection is not reused.
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer)); err != nil {
		return fmt.Errorf("read answer: %w", withoutURL(err))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("memory API answered %d", resp.StatusCode)
	}
	return nil
}

// withoutURL strips the URL net/http puts in its errors, where a token in
// a user-supplied endpoint would be logged.
func withoutURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
