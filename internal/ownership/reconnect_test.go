package ownership

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/natstest"
	"github.com/jetbox-dev/jetbox/streams"
)

// lossyProxy forwards TCP connections on loopback to a nats-server; while
// dropping, what the server sends is lost on the way, as it is when a
// worker's connection breaks with a delivery in flight.
type lossyProxy struct {
	ln       net.Listener
	target   string
	dropping atomic.Bool
	mu       sync.Mutex
	conns    []net.Conn
}

func startLossyProxy(t *testing.T, target string) *lossyProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lossyProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				client.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, client, server)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(server, client); server.Close() }()
			go func() {
				buf := make([]byte, 32<<10)
				for {
					n, err := server.Read(buf)
					if n > 0 && !p.dropping.Load() {
						if _, werr := client.Write(buf[:n]); werr != nil {
							break
						}
					}
					if err != nil {
						break
					}
				}
				client.Close()
			}()
		}
	}()
	return p
}

func (p *lossyProxy) url() string { return "nats://" + p.ln.Addr().String() }

// cut closes every connection through the proxy, both ways.
func (p *lossyProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// A write delivered while the owner's connection is breaking never
// arrives, and comes back only after its ack wait. The owner, reconnected,
// must not start the memory's next write before it.
func TestAWriteLostOnTheWayDuringAReconnectStillRunsFirst(t *testing.T) {
	srv := natstest.Start(t)
	_, js := srv.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel) // after the partition is released
	scfg := streams.DefaultConfig()
	scfg.Partitions = 1
	scfg.AckWait = time.Second
	if _, err := streams.Provision(ctx, js, scfg); err != nil {
		t.Fatal(err)
	}
	publish := func(w string) {
		t.Helper()
		if _, err := js.Publish(ctx, "memory.t.fast_ack.store", []byte(w)); err != nil {
			t.Fatal(err)
		}
	}

	proxy := startLossyProxy(t, srv.Addr().String())
	nc, err := nats.Connect(proxy.url(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close) // after the partition is released
	ownerJS, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	_, started := takeRecording(t, ctx, nc, ownerJS, scfg)
	next := func() string {
		t.Helper()
		select {
		case w := <-started:
			return w
		case <-ctx.Done():
			t.Fatal("nothing started")
			return ""
		}
	}
	publish("W")
	if w := next(); w != "W" {
		t.Fatalf("started %s, want W", w)
	}

	// X is delivered while the connection is breaking, and lost.
	proxy.dropping.Store(true)
	publish("X")
	time.Sleep(200 * time.Millisecond)
	proxy.cut()
	proxy.dropping.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for nc.Stats().Reconnects == 0 || !nc.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("the owner did not reconnect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	publish("Y")

	order := []string{next(), next()}
	if fmt.Sprint(order) != "[X Y]" {
		t.Fatalf("after the reconnect the owner started %v, want [X Y]: X, lost on the way, comes back after its ack wait", order)
	}
}
