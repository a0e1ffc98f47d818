package jspull

import (
	"sync"

	"github.com/nats-io/nats.go"
)

// A connection's iterators learn that it reconnected from one status
// listener and one goroutine per connection, not one each: a worker
// has an iterator per partition it owns.
var (
	reconnectsMu sync.Mutex
	reconnects   = map[*nats.Conn]*connWatch{}
)

type connWatch struct {
	status chan nats.Status
	its    map[*Iterator]struct{} // guarded by reconnectsMu
}

// watchReconnects makes it pull again whenever its connection reconnects.
func watchReconnects(it *Iterator) {
	reconnectsMu.Lock()
	defer reconnectsMu.Unlock()
	w := reconnects[it.nc]
	if w == nil {
		w = &connWatch{status: it.nc.StatusChanged(nats.CONNECTED, nats.RECONNECTING), its: map[*Iterator]struct{}{}}
		reconnects[it.nc] = w
		go w.run()
	}
	w.its[it] = struct{}{}
}

// unwatchReconnects undoes watchReconnects; the connection's watch ends
// with its last iterator.
func unwatchReconnects(it *Iterator) {
	reconnectsMu.Lock()
	defer reconnectsMu.Unlock()
	w := reconnects[it.nc]
	if w == nil {
		return
	}
	if _, ok := w.its[it]; !ok {
		return
	}
	delete(w.its, it)
	if len(w.its) == 0 {
		delete(reconnects, it.nc)
		it.nc.RemoveStatusListener(w.status)
	}
}

// run pulls again for every iterator after a reconnect: the requests open
// on the old connection's server are gone. It ends when the listener is
// removed.
func (w *connWatch) run() {
	reconnecting := false
	for s := range w.status {
		switch s {
		case nats.RECONNECTING:
			reconnecting = true
		case nats.CONNECTED:
			if !reconnecting {
				continue
			}
			reconnecting = false
			reconnectsMu.Lock()
			its := make([]*Iterator, 0, len(w.its))
			for it := range w.its {
				its = append(its, it)
			}
			reconnectsMu.Unlock()
			for _, it := range its {
				it.mu.Lock()
				it.resetRequests()
				it.pull()
				it.mu.Unlock()
			}
		}
	}
}
