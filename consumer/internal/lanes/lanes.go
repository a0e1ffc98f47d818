// Package lanes keeps the writes to one memory (tenant and coord) in stream
// order inside a worker.
//
// The contract: the pull loop tells the lanes of every write in delivery
// order (Expect) before any starts; a write then waits (Wait) until it is
// the lowest sequence this worker holds for its memory, runs, and leaves
// (Leave), which lets the next one run: every Turn must leave, settled or
// handed back, or the writes after it wait until their context ends. A write
// waiting for an earlier one stays in the worker, held (ownership.Partition
// keeps it in progress), instead of being put back on the stream: put
// back, it could come back after a later write, or go to another worker.
//
// Across workers the order needs every write of a memory to reach one
// worker at a time: partitions and their owners (see docs/TOPOLOGY.md).
package lanes

import (
	"context"
	"sync"
)

// Lanes are the writes a worker holds, one lane per memory. Only memories
// with writes held are remembered.
type Lanes struct {
	mu sync.Mutex
	m  map[key]*lane
}

type key struct{ tenant, coord string }

// lane is the writes held for one memory, lowest sequence first. The head
// may run; the others wait for it.
type lane struct{ turns []*Turn }

// Turn is one write's place in its lane.
type Turn struct {
	key   key
	seq   uint64
	ready chan struct{} // closed when the write is the head of its lane
}

// New returns empty lanes.
func New() *Lanes { return &Lanes{m: map[key]*lane{}} }

// Expect places a pulled write to the memory of tenant and coord in its
// lane. A write arriving with a lower sequence than writes already waiting
// goes before them, but not before the head: it has been told to run and
// may be running.
func (l *Lanes) Expect(tenant, coord string, seq uint64) *Turn {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := key{tenant, coord}
	t := &Turn{key: k, seq: seq, ready: make(chan struct{})}
	ln := l.m[k]
	if ln == nil {
		ln = &lane{}
		l.m[k] = ln
	}
	i := len(ln.turns)
	for i > 1 && ln.turns[i-1].seq > seq {
		i--
	}
	ln.turns = append(ln.turns, nil)
	copy(ln.turns[i+1:], ln.turns[i:])
	ln.turns[i] = t
	if i == 0 {
		close(t.ready)
	}
	return t
}

// Told says whether the turn was told to run.
func (t *Turn) Told() bool {
	select {
	case <-t.ready:
		return true
	default:
		return false
	}
}

// Wait blocks until the write may run or ctx ends.
func (l *Lanes) Wait(ctx context.Context, t *Turn) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Leave takes a write out of its lane, settled or handed back, and tells
// the next one to run.
func (l *Lanes) Leave(t *Turn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ln := l.m[t.key]
	if ln == nil {
		return
	}
	for i, u := range ln.turns {
		if u == t {
			ln.turns = append(ln.turns[:i], ln.turns[i+1:]...)
			break
		}
	}
	if len(ln.turns) == 0 {
		delete(l.m, t.key)
		return
	}
	if head := ln.turns[0]; !head.Told() {
		close(head.ready)
	}
}

// len is the number of memories with writes held.
func (l *Lanes) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
