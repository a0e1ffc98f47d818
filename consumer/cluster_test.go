package consumer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/jetbox-dev/jetbox/internal/clustertest"
	"github.com/jetbox-dev/jetbox/internal/testrig"
	"github.com/jetbox-dev/jetbox/producer"
	"github.com/jetbox-dev/jetbox/streams"
)

// clusterHarness is the harness on a 3-node JetStream cluster: the outbox
// provisioned with 3 replicas, the development memory API on loopback, and
// workers each on its own connection to all three servers.
type clusterHarness struct {
	*harness
	cluster *clustertest.Cluster
}

func newClusterHarness(t *testing.T, adjust ...func(*streams.Config)) *clusterHarness {
	t.Helper()
	cfg := testrig.Streams()
	cfg.Replicas = 3
	// One partition per mode: every fast_ack write goes through the one
	// consumer whose leader the tests move and stop.
	cfg.Partitions = 1
	h := setUpHarness(t, testrig.Options{Cluster: true, Streams: cfg}, adjust...)
	return &clusterHarness{harness: h, cluster: h.rig.Cluster}
}

// drained reports whether the outbox holds nothing and no group has a write
// pending or in flight.
func (ch *clusterHarness) drained() (bool, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := ch.js.Stream(ctx, ch.streams.Stream)
	if err != nil {
		return false, err.Error()
	}
	info, err := s.Info(ctx)
	if err != nil {
		return false, err.Error()
	}
	if info.State.Msgs != 0 {
		return false, fmt.Sprintf("%d writes in the outbox", info.State.Msgs)
	}
	for _, m := range streams.Modes {
		for p := range ch.streams.Partitions {
			name := streams.PartitionConsumerName(m, p)
			c, err := s.Consumer(ctx, name)
			if err != nil {
				return false, err.Error()
			}
			ci, err := c.Info(ctx)
			if err != nil {
				return false, err.Error()
			}
			if ci.NumPending != 0 || ci.NumAckPending != 0 {
				return false, fmt.Sprintf("consumer %s: %d pending, %d awaiting ack", name, ci.NumPending, ci.NumAckPending)
			}
		}
	}
	return true, ""
}

// appliedWithin waits until n writes are applied, and says whether they were.
func (ch *clusterHarness) appliedWithin(n uint64, within time.Duration) bool {
	for deadline := time.Now().Add(within); ch.totals().Distinct() < n; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// consumersState describes the outbox and each partition consumer that holds
// a write, for a test that failed waiting on them.
func (ch *clusterHarness) consumersState() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := ch.js.Stream(ctx, ch.streams.Stream)
	if err != nil {
		return "stream: " + err.Error()
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "stream info: " + err.Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "outbox holds %d writes (sequences %d-%d)", info.State.Msgs, info.State.FirstSeq, info.State.LastSeq)
	for _, m := range streams.Modes {
		for p := range ch.streams.Partitions {
			name := streams.PartitionConsumerName(m, p)
			c, err := s.Consumer(ctx, name)
			if err != nil {
				fmt.Fprintf(&b, "; %s: %v", name, err)
				continue
			}
			ci, err := c.Info(ctx)
			if err != nil {
				fmt.Fprintf(&b, "; %s: %v", name, err)
				continue
			}
			if ci.NumPending == 0 && ci.NumAckPending == 0 {
				continue
			}
			var pinned []string
			for _, g := range ci.PriorityGroups {
				pinned = append(pinned, g.Group+"="+g.PinnedClientID)
			}
			fmt.Fprintf(&b, "; %s: %d pending, %d awaiting ack, %d redelivered, %d pulls waiting, delivered up to %d, acked floor %d, pinned %v",
				name, ci.NumPending, ci.NumAckPending, ci.NumRedelivered, ci.NumWaiting, ci.Delivered.Stream, ci.AckFloor.Stream, pinned)
		}
	}
	return b.String()
}

// Two workers starting together on a new cluster both provision the outbox
// with 3 replicas, at once and without a retry, and everything ends up with
// 3 replicas.
//
// nats-server 2.15.2 does not answer either request when a stream update
// arrives while the same stream's creation is still being proposed; an
// update-then-create provisioning (jetstream's CreateOrUpdateStream) made
// both workers time out here on every run. streams.Provision creates first.
func TestClusterOutboxIsProvisionedWithThreeReplicas(t *testing.T) {
	c := clustertest.Start(t)
	cfg := streams.DefaultConfig()
	cfg.Replicas = 3
	cfg.Partitions = 2
	var wg sync.WaitGroup
	for worker := range 2 {
		_, js := c.Connect(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			start := time.Now()
			if _, err := streams.Provision(ctx, js, cfg); err != nil {
				t.Errorf("worker %d could not provision the outbox with 3 replicas: %v after %s", worker, err, time.Since(start).Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch := &clusterHarness{harness: &harness{t: t, streams: cfg}, cluster: c}
	ch.nc, ch.js = c.Connect(t)
	checkStream := func(name string) {
		t.Helper()
		s, err := ch.js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Leader == "" || len(info.Cluster.Replicas) != 2 {
			t.Fatalf("stream %s: %d replicas, cluster %+v; want a leader and 2 followers", name, info.Config.Replicas, info.Cluster)
		}
	}
	checkStream(ch.streams.Stream)
	checkStream(ch.streams.DLQStream)
	checkStream("KV_" + ch.streams.AttemptsBucket) // a KV bucket is a stream
	kv, err := ch.js.KeyValue(ctx, ch.streams.AttemptsBucket)
	if err != nil {
		t.Fatal(err)
	}
	status, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if kvs, ok := status.(*jetstream.KeyValueBucketStatus); !ok || kvs.StreamInfo().Config.Replicas != 3 {
		t.Fatalf("bucket %s status %+v, want 3 replicas", ch.streams.AttemptsBucket, status)
	}
	checkStream("KV_" + ch.streams.MembersBucket)
	for _, m := range streams.Modes {
		for p := range cfg.Partitions {
			name := streams.PartitionConsumerName(m, p)
			c, err := ch.js.Consumer(ctx, ch.streams.Stream, name)
			if err != nil {
				t.Fatalf("consumer %s: %v", name, err)
			}
			ci, err := c.Info(ctx)
			if err != nil {
				t.Fatalf("consumer %s: %v", name, err)
			}
			if ci.Config.Replicas != 3 || ci.Cluster == nil || ci.Cluster.Leader == "" || len(ci.Cluster.Replicas) != 2 {
				t.Fatalf("consumer %s: %d replicas, cluster %+v; want a leader and 2 followers", name, ci.Config.Replicas, ci.Cluster)
			}
		}
	}
	// Provisioning again, as every worker does at start, changes nothing.
	if _, err := streams.Provision(ctx, ch.js, ch.streams); err != nil {
		t.Fatalf("provision again: %v", err)
	}
	if err := streams.Check(ctx, ch.js, ch.streams); err != nil {
		t.Fatal(err)
	}
}

// ackedWrite is a write whose Store returned without error.
type ackedWrite struct {
	tenant, coord string
	at            time.Time // when Store returned
	began         time.Time // when the successful Store call began
	attempts      int       // Store calls it took
	duplicate     bool      // the outbox had already stored an earlier attempt
}

// The server leading the outbox stream goes away while two workers apply a
// stream of fast_ack writes and a producer keeps writing, then comes back.
// Every write the outbox acknowledged must be applied, and none applied
// twice.
//
//   - stop: a clean shutdown, which hands the leadership over at once. The
//     producer's publish timeout (10s) covers it.
//   - crash: the server is cut off first, so the others elect a new leader
//     only after the raft election timeout (4-9s), as after a killed process
//     or a lost host. It also leads the fast_ack group the workers pull
//     from. The publish timeout is 2s, shorter than the election, so writes
//     fail and the test retries them with the same request id.
func TestClusterLeaderLossUnderLoadLosesAndRepeatsNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node clusters with a leader loss under load")
	}
	t.Run("stop", func(t *testing.T) { testLeaderLossUnderLoad(t, false, 10*time.Second) })
	t.Run("crash", func(t *testing.T) { testLeaderLossUnderLoad(t, true, 2*time.Second) })
}

func testLeaderLossUnderLoad(t *testing.T, crash bool, publishTimeout time.Duration) {
	const (
		total     = 3000
		tenants   = 6
		writers   = 12
		perSecond = 300 // the producer's pace, so that writing spans the outage
	)
	// A short ack wait makes the acks lost with the leader come back as
	// redeliveries within the test.
	ch := newClusterHarness(t, func(c *streams.Config) { c.AckWait = 3 * time.Second })
	var appliedMu sync.Mutex
	var appliedAt []time.Time // when the memory API answered each write
	ch.faults.mu.Lock()
	ch.faults.onApply = func(r recorded) {
		appliedMu.Lock()
		appliedAt = append(appliedAt, r.At)
		appliedMu.Unlock()
	}
	ch.faults.mu.Unlock()

	wcfg := ch.workerConfig()
	workers := []*runningWorker{ch.startWorker(wcfg), ch.startWorker(wcfg)}
	p := ch.producer(producer.Config{Mode: streams.ModeFastAck, PublishTimeout: publishTimeout})

	leader := ch.cluster.WaitStreamLeader(t, clustertest.DefaultAccount, ch.streams.Stream, 10*time.Second)
	if crash {
		ch.cluster.MoveConsumerLeader(t, ch.nc, ch.streams.Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0), leader)
	}
	t.Logf("before: stream leader %s; %s", leader.Name(), ch.placement(workers))

	// Writers take indexes in order at a steady pace; each retries its write
	// with the same request id until the outbox acknowledges it.
	var (
		acked     = make([]*ackedWrite, total)
		nAcked    atomic.Int64
		failures  atomic.Int64 // Store calls that returned an error
		errMu     sync.Mutex
		errKinds  = map[string]int{}
		next      atomic.Int64
		writeDone = make(chan struct{})
		wg        sync.WaitGroup
	)
	pace := time.NewTicker(time.Second / perSecond)
	defer pace.Stop()
	ctx, cancelWrites := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancelWrites()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= total {
					return
				}
				select {
				case <-pace.C:
				case <-ctx.Done():
					return
				}
				tenant := fmt.Sprintf("cluster-%d", i%tenants)
				req := producer.StoreRequest{Tenant: tenant, Key: fmt.Sprintf("k-%d", i), Payload: map[string]any{"i": i}}
				for attempt := 1; ; attempt++ {
					began := time.Now()
					res, err := p.Store(ctx, req, producer.WithRequestID(fmt.Sprintf("leader-loss-%d", i)))
					if err == nil {
						acked[i] = &ackedWrite{tenant: tenant, coord: res.Coord, at: time.Now(), began: began, attempts: attempt, duplicate: res.Duplicate}
						nAcked.Add(1)
						break
					}
					failures.Add(1)
					errMu.Lock()
					errKinds[errorKind(err)]++
					errMu.Unlock()
					if ctx.Err() != nil {
						return // the test is ending
					}
					if !errors.Is(err, producer.ErrPublishTimeout) {
						t.Errorf("write %d, attempt %d: %v", i, attempt, err)
						return
					}
				}
			}
		}()
	}
	go func() { wg.Wait(); close(writeDone) }()
	defer func() { cancelWrites(); <-writeDone }() // no writer outlives the test

	// A third of the way in, kill the outbox's stream leader.
	waitFor(t, 30*time.Second, "a third of the writes acknowledged", func() bool { return nAcked.Load() >= total/3 })
	stoppedAt := time.Now()
	ackedAtStop := nAcked.Load()
	how := "stopped"
	if crash {
		how = "crashed"
		ch.cluster.Crash(t, leader)
	} else {
		ch.cluster.Stop(leader)
	}
	// Time both elections the loss may cause: the outbox stream's and the
	// fast_ack group's (when the lost server led it too).
	var newLeader *server.Server
	var elected, groupElected time.Duration
	for deadline := time.Now().Add(30 * time.Second); elected == 0 || groupElected == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no stream leader (%s) or no fast_ack group leader (%s) 30s after the loss", elected, groupElected)
		}
		if s := ch.cluster.StreamLeader(clustertest.DefaultAccount, ch.streams.Stream); s != nil && elected == 0 {
			newLeader, elected = s, time.Since(stoppedAt)
		}
		if ch.cluster.ConsumerLeader(clustertest.DefaultAccount, ch.streams.Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0)) != nil && groupElected == 0 {
			groupElected = time.Since(stoppedAt)
		}
	}
	t.Logf("%s stream leader %s with %d of %d writes acknowledged; %s took over after %s",
		how, leader.Name(), ackedAtStop, total, newLeader.Name(), elected.Round(time.Millisecond))

	// Keep writing on two servers for a while, then bring the third back.
	waitFor(t, 45*time.Second, "writes acknowledged on the new leader", func() bool {
		return nAcked.Load() >= ackedAtStop+total/3 || isClosed(writeDone)
	})
	restartedAt := time.Now()
	ch.cluster.Restart(t, leader)
	t.Logf("restarted %s after %s down, with %d writes acknowledged; %s",
		leader.Name(), restartedAt.Sub(stoppedAt).Round(time.Millisecond), nAcked.Load(), ch.placement(workers))

	select {
	case <-writeDone:
	case <-time.After(60 * time.Second):
		t.Fatalf("writers did not finish: %d of %d acknowledged", nAcked.Load(), total)
	}
	writesEnded := time.Now()
	if t.Failed() {
		t.FailNow()
	}
	if n := nAcked.Load(); n != total {
		t.Fatalf("%d of %d writes acknowledged", n, total)
	}

	// Every acknowledged write is applied, once.
	perTenant := map[string]uint64{}
	for _, a := range acked {
		perTenant[a.tenant]++
	}
	if !ch.appliedWithin(total, 45*time.Second) {
		t.Fatalf("%d of %d acknowledged writes applied after 45s; %s; %s", ch.totals().Applied, total, ch.consumersState(), ch.placement(workers))
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ok, why := ch.drained()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox not drained after 30s: %s", why)
		}
	}
	drainedAt := time.Now()
	ch.cluster.WaitStreamCurrent(t, clustertest.DefaultAccount, ch.streams.Stream, 30*time.Second)
	for _, s := range ch.cluster.Servers() {
		waitFor(t, 10*time.Second, "replica "+s.Name()+" empty", func() bool {
			state, ok := clustertest.ReplicaState(s, clustertest.DefaultAccount, ch.streams.Stream)
			return ok && state.Msgs == 0
		})
	}
	time.Sleep(500 * time.Millisecond) // let a stray repeat show up
	got := ch.totals()
	if got.Distinct() != total {
		t.Fatalf("memory API counted %+v, want exactly %d different writes applied (one per acknowledged write)", got, total)
	}
	for tenant, want := range perTenant {
		if ts := ch.store.TenantStats(tenant); ts.Distinct() != want {
			t.Fatalf("tenant %s: %d applied, %d acknowledged", tenant, ts.Applied, want)
		}
	}
	for i, a := range acked {
		if _, found, err := ch.store.Get(a.tenant, a.coord); err != nil || !found {
			t.Fatalf("write %d (tenant %s, coord %s) acknowledged but not in the memory API (%v)", i, a.tenant, a.coord, err)
		}
	}
	if dl := ch.deadLetters(); len(dl) != 0 {
		t.Fatalf("%d dead letters", len(dl))
	}

	// The figures.
	var retried, duplicates int
	var slowest time.Duration
	resumed := time.Duration(-1)
	for _, a := range acked {
		if a.attempts > 1 {
			retried++
		}
		if a.duplicate {
			duplicates++
		}
		slowest = max(slowest, a.at.Sub(a.began))
		if a.began.After(stoppedAt) && (resumed < 0 || a.at.Sub(stoppedAt) < resumed) {
			resumed = a.at.Sub(stoppedAt)
		}
	}
	appliedMu.Lock()
	applyGap := largestGapAfter(appliedAt, stoppedAt.Add(-time.Second))
	appliedMu.Unlock()
	ackTimes := make([]time.Time, 0, total)
	for _, a := range acked {
		ackTimes = append(ackTimes, a.at)
	}
	ackGap := largestGapAfter(ackTimes, stoppedAt.Add(-time.Second))
	errMu.Lock()
	kinds := fmt.Sprint(errKinds)
	errMu.Unlock()
	t.Logf("acknowledged %d, applied %d, of which redeliveries applied again %d, dead letters 0", total, got.Applied, got.Repeated)
	t.Logf("after the loss: stream leader in %s, fast_ack group leader in %s; first write issued after the loss acknowledged %s after it; longest pause between acknowledgements %s, between applies %s",
		elected.Round(time.Millisecond), groupElected.Round(time.Millisecond), resumed.Round(time.Millisecond), ackGap.Round(time.Millisecond), applyGap.Round(time.Millisecond))
	t.Logf("producer: %d failed Store calls retried by the test (%s), %d writes needed a retry, %d of them found already stored (duplicate ack), slowest Store %s",
		failures.Load(), kinds, retried, duplicates, slowest.Round(time.Millisecond))
	t.Logf("outbox drained %s after the last write was acknowledged", drainedAt.Sub(writesEnded).Round(time.Millisecond))
}

// placement says where the MEMORY stream, the fast_ack consumer and the
// workers' connections are.
func (ch *clusterHarness) placement(workers []*runningWorker) string {
	var b strings.Builder
	name := func(s *server.Server) string {
		if s == nil {
			return "none"
		}
		return s.Name()
	}
	fmt.Fprintf(&b, "fast_ack group leader %s; workers on", name(ch.cluster.ConsumerLeader(clustertest.DefaultAccount, ch.streams.Stream, streams.PartitionConsumerName(streams.ModeFastAck, 0))))
	for _, w := range workers {
		fmt.Fprintf(&b, " %s", serverOf(w.nc))
	}
	fmt.Fprintf(&b, "; producer on %s", serverOf(ch.nc))
	return b.String()
}

func serverOf(nc *nats.Conn) string {
	if !nc.IsConnected() {
		return "(" + nc.Status().String() + ")"
	}
	return nc.ConnectedServerName()
}

func errorKind(err error) string {
	switch {
	case errors.Is(err, producer.ErrPublishTimeout):
		return "publish timeout"
	case errors.Is(err, context.DeadlineExceeded):
		return "deadline"
	}
	return err.Error()
}

// largestGapAfter is the longest time between consecutive events after from.
func largestGapAfter(events []time.Time, from time.Time) time.Duration {
	ts := slices.Clone(events)
	slices.SortFunc(ts, func(a, b time.Time) int { return a.Compare(b) })
	var gap time.Duration
	prev := from
	for _, at := range ts {
		if at.Before(from) {
			continue
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return gap
}
