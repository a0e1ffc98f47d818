package clustertest

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// relay forwards the TCP connections it accepts on a loopback port to a
// target address. Cut, it closes every connection it carries and those it
// accepts, as a network failure would, until it is restored.
type relay struct {
	ln     net.Listener
	target func() (addr string, ok bool) // ok is false while the target is unknown

	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func startRelay(t testing.TB, target func() (string, bool)) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("clustertest: relay listener: %v", err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		in, err := r.ln.Accept()
		if err != nil {
			return // closed
		}
		r.wg.Add(1)
		go r.carry(in)
	}
}

func (r *relay) carry(in net.Conn) {
	defer r.wg.Done()
	if !r.track(in) {
		in.Close()
		return
	}
	addr, ok := r.target()
	if !ok {
		r.untrack(in)
		in.Close()
		return
	}
	out, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil || !r.track(out) {
		if out != nil {
			out.Close()
		}
		r.untrack(in)
		in.Close()
		return
	}
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		// Either side ending ends both.
		dst.Close()
		src.Close()
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
	r.untrack(in)
	r.untrack(out)
}

// track registers a connection, unless the relay is cut or closed.
func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cut || r.conns == nil {
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) untrack(c net.Conn) {
	r.mu.Lock()
	delete(r.conns, c)
	r.mu.Unlock()
}

func (r *relay) setCut(cut bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cut = cut
	if cut {
		for c := range r.conns {
			c.Close()
		}
	}
}

// close stops the relay and every connection it carries, and waits for its
// goroutines.
func (r *relay) close() {
	r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.conns = nil
	r.mu.Unlock()
	r.wg.Wait()
}
