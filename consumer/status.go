package consumer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/nats-io/nats.go"

	"github.com/jetbox-dev/jetbox/consumer/internal/breakers"
)

// StatusSubject is where every running worker answers with its Status, so
// one request gathers the breaker state of the whole fleet.
const StatusSubject = "jetbox.status"

// Status is what one worker reports about itself.
type Status struct {
	Worker string        `json:"worker"`
	Ready  bool          `json:"ready"`
	Groups []GroupStatus `json:"groups"`
}

// GroupStatus lists a group's tenants that have a breaker in memory.
type GroupStatus struct {
	Group      string         `json:"group"`
	Partitions []int          `json:"partitions"` // owned by this worker
	Breakers   []BreakerState `json:"breakers"`
}

// BreakerState is one tenant's breaker as seen by status.
type BreakerState = breakers.State

// Status is a snapshot of this worker's breakers.
func (w *Worker) Status() Status {
	host, _ := os.Hostname()
	s := Status{Worker: fmt.Sprintf("%s/%d %s", host, os.Getpid(), w.id), Ready: w.Ready() == nil}
	for _, g := range w.groups {
		b := g.breakers.Snapshot()
		sort.Slice(b, func(i, j int) bool { return b[i].Tenant < b[j].Tenant })
		s.Groups = append(s.Groups, GroupStatus{Group: string(g.mode), Partitions: g.partitions.Owned(), Breakers: b})
	}
	return s
}

// serveStatus answers status requests until the subscription is closed.
func (w *Worker) serveStatus() (*nats.Subscription, error) {
	return w.nc.Subscribe(StatusSubject, func(m *nats.Msg) {
		data, err := json.Marshal(w.Status())
		if err != nil {
			return
		}
		_ = m.Respond(data)
	})
}
