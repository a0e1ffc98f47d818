// Package memclient is the worker's HTTP client of the memory API. It owns
// one call: the request built from an intake.Write by the contract in
// internal/sfmapi (route, headers, bearer token, body as decoded), its
// transport and timeout, and reading the answer and classifying it
// (sfmapi.Class). It decides nothing about the write: whether an Answer
// leads to an ack, a retry or a dead letter is the worker's delivery
// policy.
package memclient

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

	"github.com/jetbox-dev/jetbox/consumer/internal/intake"
	"github.com/jetbox-dev/jetbox/internal/sfmapi"
	"github.com/jetbox-dev/jetbox/streams"
)

// maxAnswer bounds how much of an answer a worker reads and forwards.
const maxAnswer = 1 << 20

// Answer is the result of one attempt.
type Answer struct {
	Class      sfmapi.Class
	Status     int // 0 when no answer came
	Body       []byte
	RetryAfter time.Duration // the memory API's Retry-After, for a transient failure
	Err        error         // transport error, or a description of a failed answer
}

// Config is what a Client is made of.
type Config struct {
	Endpoint string // the memory API's base URL
	Token    string // bearer token; "" sends none
	// HTTPClient, when set, makes every call; otherwise the client has a
	// transport of its own.
	HTTPClient  *http.Client
	Concurrency int           // calls at once, which sizes the idle connection pool
	Timeout     time.Duration // one call, answer read included
	// Observe, when set, is told every call's op, status (0: no usable
	// answer) and duration.
	Observe func(op streams.Op, status int, seconds float64)
}

// Send makes one HTTP call.
type Send func(*http.Request) (*http.Response, error)

// Client sends writes to a SomaFractalMemory-compatible HTTP API.
type Client struct {
	base    string
	auth    string
	timeout time.Duration
	// send makes one call: the transport's RoundTrip for jetbox's own
	// client, Do for one the embedding program supplies (which may follow
	// redirects or carry a jar and a timeout of its own).
	send Send
	// URLs of the calls with a body, parsed once; requests share them and
	// nothing in a round trip changes them.
	memoriesURL, linkURL *url.URL
	observe              func(op streams.Op, status int, seconds float64)
}

// New makes a client.
func New(cfg Config) *Client {
	var send Send
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
	m := &Client{base: base, auth: sfmapi.Bearer(cfg.Token), send: send, timeout: cfg.Timeout, observe: cfg.Observe}
	if m.observe == nil {
		m.observe = func(streams.Op, int, float64) {}
	}
	// A bad endpoint fails every call with "build request" instead.
	m.memoriesURL, _ = url.Parse(base + sfmapi.PathMemories)
	m.linkURL, _ = url.Parse(base + sfmapi.PathLink)
	if m.memoriesURL != nil && m.memoriesURL.User != nil && cfg.HTTPClient == nil {
		// Only an http.Client turns user:password@ into basic auth.
		m.send = (&http.Client{Transport: transport}).Do
	}
	return m
}

// WrapSend puts wrap around every call the client makes from now on, as
// tracing does.
func (m *Client) WrapSend(wrap func(Send) Send) { m.send = wrap(m.send) }

// url is the endpoint of a call.
func (m *Client) url(path string) (*url.URL, error) {
	switch {
	case path == sfmapi.PathMemories && m.memoriesURL != nil:
		return m.memoriesURL, nil
	case path == sfmapi.PathLink && m.linkURL != nil:
		return m.linkURL, nil
	}
	return url.Parse(m.base + path)
}

// maxRequestHeaders is how many headers a request can carry: those Apply
// sets.
const maxRequestHeaders = 8

// Apply makes one attempt. It never returns an error: the answer's class
// says what to do next.
func (m *Client) Apply(ctx context.Context, w *intake.Write) Answer {
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	u, err := m.url(w.Path)
	if err != nil {
		return Answer{Class: sfmapi.Permanent, Err: fmt.Errorf("build request: %w", TransportError(err))}
	}
	// What http.NewRequestWithContext makes, without parsing the URL again.
	req := (&http.Request{
		Method: w.Method, URL: u, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: make(http.Header, maxRequestHeaders), Host: u.Host,
	}).WithContext(ctx)
	if w.Body != nil {
		body := w.Body
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
	set(sfmapi.HeaderTenant, w.Addr.Tenant)
	set(sfmapi.HeaderIdempotencyKey, w.IdempotencyKey)
	set(sfmapi.HeaderNamespace, w.Namespace)
	set(sfmapi.HeaderRequestID, w.RequestID)
	set(sfmapi.HeaderTraceparent, w.Traceparent)
	set(sfmapi.HeaderTracestate, w.Tracestate)
	if w.Body != nil {
		set(sfmapi.HeaderContentType, sfmapi.ContentTypeJSON)
	}
	start := time.Now()
	resp, err := m.send(req)
	if err != nil {
		m.observe(w.Addr.Op, 0, time.Since(start).Seconds())
		return Answer{Class: sfmapi.Transient, Err: TransportError(err)}
	}
	defer resp.Body.Close()
	data, err := readAnswer(resp)
	if err != nil {
		m.observe(w.Addr.Op, 0, time.Since(start).Seconds()) // a broken answer is no answer
		return Answer{Class: sfmapi.Transient, Status: resp.StatusCode, Err: fmt.Errorf("read answer: %w", TransportError(err))}
	}
	m.observe(w.Addr.Op, resp.StatusCode, time.Since(start).Seconds())
	a := Answer{Status: resp.StatusCode, Body: data, Class: sfmapi.Classify(resp.StatusCode)}
	if a.Class == sfmapi.Transient {
		a.RetryAfter = sfmapi.ParseRetryAfter(resp.Header.Get(sfmapi.HeaderRetryAfter), time.Now())
	}
	if a.Class != sfmapi.Applied {
		a.Err = fmt.Errorf("memory API answered %d", resp.StatusCode)
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

// TransportError strips the URL from net/http's errors: it is noise in a
// dead letter and may carry credentials in a user-supplied endpoint.
func TransportError(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
