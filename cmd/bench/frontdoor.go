package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/rs/zerolog"

	"github.com/jetbox-dev/jetbox/frontdoor"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// frontDoorToken is the bench's SomaBrain token at the front door.
const frontDoorToken = "bench-front-door-token"

// frontDoorPhase measures SomaFractalMemory's HTTP API served by the front
// door, called as SomaBrain calls it, from 1 and 64 callers: fast_ack with
// no worker running (like the producer's fast_ack runs it is compared
// with), then sync with the workers applying each write.
func (b *bench) frontDoorPhase(ctx context.Context, e *env) error {
	p, err := producer.New(e.nc, producer.Config{BufferFullError: true})
	if err != nil {
		return err
	}
	defer p.Close(context.WithoutCancel(ctx))
	h, err := frontdoor.New(frontdoor.Config{Producer: p, MemoryAPI: e.apiURL, MemoryToken: apiToken,
		Tokens: frontdoor.Tokens{Service: frontDoorToken}, Log: zerolog.Nop()})
	if err != nil {
		return err
	}
	srv, err := frontdoor.Listen(frontdoor.ServerConfig{Addr: "127.0.0.1:0"}, h, zerolog.Nop())
	if err != nil {
		return err
	}
	go srv.Serve()
	defer srv.Shutdown(context.WithoutCancel(ctx))
	base := "http://" + srv.Addr()

	c := sweep[len(sweep)-1]
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 2*c, 2*c
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport}

	for _, mode := range []streams.Mode{streams.ModeFastAck, streams.ModeSync} {
		if mode == streams.ModeSync {
			if err := b.ensureWorkers(ctx, e); err != nil {
				return err
			}
		}
		for _, callers := range []int{1, c} {
			if err := b.frontDoorRun(ctx, e, client, base, mode, callers); err != nil {
				return err
			}
		}
	}
	return nil
}

// frontDoorRun POSTs a run of writes in mode to the front door from callers
// callers. One caller is timed against the producer's same mode from one
// caller: what the front door adds to a call.
func (b *bench) frontDoorRun(ctx context.Context, e *env, client *http.Client, base string, mode streams.Mode, callers int) error {
	n := b.n(100000)
	switch {
	case mode == streams.ModeSync && callers == 1:
		n = b.n(2000)
	case mode == streams.ModeSync:
		n = b.n(5000)
	case callers == 1:
		n = b.n(10000)
	}
	run := b.nextRun()
	elapsed, lat, err := load(ctx, fmt.Sprintf("front door %s c=%d", mode, callers), n, callers, func(ctx context.Context, i int) error {
		return postFrontDoor(ctx, client, base, mode, b.write(run, i, 100))
	}, nil)
	if err != nil {
		return err
	}
	b.add(newMeasurement("frontdoor_"+string(mode), callers, n, elapsed, lat))
	if len(e.workers) == 0 {
		return e.purgeOutbox(ctx)
	}
	return nil
}

// postFrontDoor sends write w as SomaBrain's memory client does.
func postFrontDoor(ctx context.Context, client *http.Client, base string, mode streams.Mode, w write) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/memories", bytes.NewReader(w.body))
	if err != nil {
		return err
	}
	for _, h := range []string{"X-API-Key", "X-Auth-Token"} {
		req.Header.Set(h, frontDoorToken)
	}
	req.Header.Set("Authorization", "Bearer "+frontDoorToken)
	req.Header.Set("X-Soma-Namespace", "somabrain_ns:"+w.tenant)
	req.Header.Set("X-Soma-Tenant", w.tenant)
	req.Header.Set("X-Request-ID", w.key)
	req.Header.Set("X-Soma-Write-Mode", string(mode))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return errors.New("front door answered " + resp.Status)
	}
	return nil
}
