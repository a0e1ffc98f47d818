package consumer

import (
	"context"
	"sync"
)

// lanes keep the writes to one memory (tenant and coord) in stream order
// inside a worker. The pull loop tells the lanes of every write in delivery
// order (expect) before any starts; a write then waits (wait) until it is
// the lowest sequence this worker holds for its memory, runs, and leaves,
// which lets the next one run. A write waiting for an earlier one stays in
// the worker, held (ownership.Partition keeps it in progress), instead of
// being put back on the stream: put back, it could come back after a later
// write, or go to another worker.
//
// Across workers the order needs every write of a memory to reach one
// worker at a time: partitions and their owners (see docs/TOPOLOGY.md).
type lanes struct {
	mu sync.Mutex
	m  map[laneKey]*lane
}

type laneKey struct{ tenant, coord string }

// lane is the writes held for one memory, lowest sequence first. The head
// may run; the others wait for it.
type lane struct{ turns []*turn }

// turn is one write's place in its lane.
type turn struct {
	key   laneKey
	seq   uint64
	ready chan struct{} // closed when the write is the head of its lane
}

func newLanes() *lanes { return &lanes{m: map[laneKey]*lane{}} }

// expect places a pulled write in its lane. A write arriving with a lower
// sequence than writes already waiting goes before them, but not before the
// head: it has been told to run and may be running.
func (l *lanes) expect(key laneKey, seq uint64) *turn {
	l.mu.Lock()
	defer l.mu.Unlock()
	t := &turn{key: key, seq: seq, ready: make(chan struct{})}
	ln := l.m[key]
	if ln == nil {
		ln = &lane{}
		l.m[key] = ln
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

// told says whether the turn was told to run.
func (t *turn) told() bool { return isClosed(t.ready) }

// isClosed says whether a signal channel has been closed, without waiting.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// wait blocks until the write may run or ctx ends.
func (l *lanes) wait(ctx context.Context, t *turn) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave takes a write out of its lane, settled or handed back, and tells
// the next one to run.
func (l *lanes) leave(t *turn) {
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
	if head := ln.turns[0]; !head.told() {
		close(head.ready)
	}
}

// len is the number of memories with writes held.
func (l *lanes) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}
