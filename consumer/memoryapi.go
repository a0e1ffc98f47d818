package consumer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jetbox-dev/jetbox/consumer/internal/telemetry"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
)

// maxAnswer bounds how much of an answer a worker reads and forwards.
const maxAnswer = 1 << 20

// answer is the result of one attempt.
type answer struct {
	class      sfmapi.Class
	status     int
	body       []byte
	retryAfter time.Duration
	err        error // transport error, or a description of a failed answer
}

// memoryAPI sends writes to a SomaFractalMemory-compatible HTTP API.
type memoryAPI struct {
	base    string
	auth    string
	timeout time.Duration
	// send makes one call: the transport's RoundTrip for jetbox's own
	// client, Do for one the embedding program supplies (which may follow
	// redirects or carry a jar and a timeout of its own).
	send func(*http.Request) (*http.Response, error)
	// URLs of the calls with a body, parsed once; requests share them and
	// nothing in a round trip changes them.
	memoriesURL, linkURL *url.URL
	durations            *telemetry.APIDurations // nil without a Registerer
}

func newMemoryAPI(cfg Config) *memoryAPI {
	var send func(*http.Request) (*http.Response, error)
	var transport *http.Transport
	if cfg.HTTPClient != nil {
		send = cfg.HTTPClient.Do
	} else {
		// The transport straight, without an http.Client: a client copies
		// every request's headers for the redirects it might follow, and the
		// memory API does not redirect (a 3xx answer is a permanent failure,
		// dead-lettered with its status, rather than a POST replayed as a
		// GET somewhere else).
		transport = http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConns = cfg.Concurrency * 2
		transport.MaxIdleConnsPerHost = cfg.Concurrency * 2
		transport.MaxConnsPerHost = 0
		send = transport.RoundTrip
	}
	base := strings.TrimRight(cfg.Endpoint, "/")
	m := &memoryAPI{base: base, auth: sfmapi.Bearer(cfg.Token), send: send, timeout: cfg.RequestTimeout, durations: telemetry.NewAPIDurations(cfg.Registerer)}
	// A bad endpoint fails every call with "build request" instead.
	m.memoriesURL, _ = url.Parse(base + sfmapi.PathMemories)
	m.linkURL, _ = url.Parse(base + sfmapi.PathLink)
	if m.memoriesURL != nil && m.memoriesURL.User != nil && cfg.HTTPClient == nil {
		// Only an http.Client turns user:password@ into basic auth.
		m.send = (&http.Client{Transport: transport}).Do
	}
	return m
}

// url is the endpoint of a call.
func (m *memoryAPI) url(path string) (*url.URL, error) {
	switch {
	case path == sfmapi.PathMemories && m.memoriesURL != nil:
		return m.memoriesURL, nil
	case path == sfmapi.PathLink && m.linkURL != nil:
		return m.linkURL, nil
	}
	return url.Parse(m.base + path)
}

// maxRequestHeaders is how many headers a request can carry: those apply
// sets.
const maxRequestHeaders = 8

// apply makes one attempt. It never returns an error: the answer's class
// says what to do next.
func (m *memoryAPI) apply(ctx context.Context, w *write) answer {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	u, err := m.url(w.path)
	if err != nil {
		return answer{class: sfmapi.Permanent, err: fmt.Errorf("build request: %w", transportError(err))}
	}
	// What http.NewRequestWithContext makes, without parsing the URL again.
	req := (&http.Request{
		Method: w.method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, maxRequestHeaders), Host: u.Host,
	}).WithContext(ctx)
	if w.body != nil {
		body := w.body
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		// Lets the transport send the request again on another connection
		// when a kept-alive one turns out to be closed.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	// Every header value shares one array instead of one allocation each.
	values := make([]string, 0, maxRequestHeaders)
	set := func(name, value string) {
		if value != "" {
			values = append(values, value)
			req.Header[name] = values[len(values)-1 : len(values) : len(values)]
		}
	}
	set(sfmapi.HeaderAuthorization, m.auth)
	set(sfmapi.HeaderTenant, w.addr.Tenant)
	set(sfmapi.HeaderIdempotencyKey, w.idempotencyKey)
	set(sfmapi.HeaderNamespace, w.namespace)
	set(sfmapi.HeaderRequestID, w.requestID)
	set(sfmapi.HeaderTraceparent, w.traceparent)
	set(sfmapi.HeaderTracestate, w.tracestate)
	if w.body != nil {
		set(sfmapi.HeaderContentType, sfmapi.ContentTypeJSON)
	}
	start := time.Now()
	resp, err := m.send(req)
	if err != nil {
		m.durations.Observe(w.addr.Op, 0, time.Since(start).Seconds())
		return answer{class: sfmapi.Transient, err: transportError(err)}
	}
	defer resp.Body.Close()
	data, err := readAnswer(resp)
	if err != nil {
		m.durations.Observe(w.addr.Op, 0, time.Since(start).Seconds()) // a broken answer is no answer
		return answer{class: sfmapi.Transient, status: resp.StatusCode, err: fmt.Errorf("read answer: %w", transportError(err))}
	}
	m.durations.Observe(w.addr.Op, resp.StatusCode, time.Since(start).Seconds())
	a := answer{status: resp.StatusCode, body: data, class: sfmapi.Classify(resp.StatusCode)}
	if a.class == sfmapi.Transient {
		a.retryAfter = sfmapi.ParseRetryAfter(resp.Header.Get(sfmapi.HeaderRetryAfter), time.Now())
	}
	if a.class != sfmapi.Applied {
		a.err = fmt.Errorf("memory API answered %d", resp.StatusCode)
	}
	return a
}

// readAnswer reads at most maxAnswer bytes of an answer, into a buffer of
// the announced size when there is one, and to its end, so that the
// connection goes back to the pool.
func readAnswer(resp *http.Response) ([]byte, error) {
	n := resp.ContentLength
	if n < 0 || n > maxAnswer {
		return io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	}
	// One byte more than announced, to read the end in the same call.
	data := make([]byte, 0, n+1)
	for {
		k, err := resp.Body.Read(data[len(data):cap(data)])
		data = data[:len(data)+k]
		switch {
		case err == io.EOF:
			return data, nil
		case err != nil:
			return data, err
		case len(data) == cap(data):
			// The transport never gives more than announced; this only
			// guards the loop.
			return data, nil
		}
	}
}

// transportError strips the URL from net/http's errors: it is noise in a
// dead letter and may carry credentials in a user-supplied endpoint.
func transportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
