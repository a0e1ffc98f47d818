// Package clustertest starts a 3-node JetStream cluster of embedded
// nats-servers inside a test process, on loopback ports, with temporary data
// directories, on the pattern of nats-server's own test helpers
// (server/jetstream_helpers_test.go, createJetStreamClusterExplicit): each
// server listens for clients on 127.0.0.1, has a cluster listener on
// 127.0.0.1 and explicit routes to the other two, and its own store dir.
//
// Servers can be stopped and restarted with the same name, ports and data,
// so that a test can take the leader of a stream away and bring it back.
// There are two ways to lose a server:
//
//   - Stop is a clean shutdown. nats-server then hands over the leadership
//     of every raft group it leads (Server.Shutdown calls
//     stepdownRaftNodes), so a new leader is there within milliseconds.
//   - Crash first cuts the server off from its peers, then shuts it down:
//     its hand-over never arrives, and the others notice the loss only when
//     the leader's heartbeats stop (the raft election timeout, 4 to 9 s in
//     nats-server), as after a killed process, a lost host or a partition.
//     For this, every route goes through a small TCP relay of this package,
//     one per direction and pair of servers.
//
// Set JETBOX_CLUSTERTEST_LOG=1 to see the servers' own log lines in the test
// output.
package clustertest

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Size is the number of servers in a cluster.
const Size = 3

// DefaultAccount is the account clients without credentials are in, as
// JetStreamIsStreamLeader and friends name it.
const DefaultAccount = server.DEFAULT_GLOBAL_ACCOUNT // "$G"

// ClusterName is the name of every test cluster.
const ClusterName = "jetbox-test"

// Cluster is a running 3-node JetStream cluster.
type Cluster struct {
	t      testing.TB
	mu     sync.Mutex
	nodes  []*node
	relays map[[2]int]*relay // [from, to] node index: the route from one server to another
}

// node is one server slot: what stays the same across a restart.
type node struct {
	name       string
	clientPort int // 0 until the first start
	routePort  int // 0 until the first start
	storeDir   string
	srv        *server.Server // nil while stopped
}

// Start starts a 3-node cluster and waits until it has a meta leader, every
// server is current and a client can use JetStream. Everything is shut down
// when the test ends.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{t: t, relays: map[[2]int]*relay{}}
	for i := 0; i < Size; i++ {
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("S-%d", i+1), storeDir: t.TempDir()})
	}
	t.Cleanup(c.shutdown)
	for from := range c.nodes {
		for to := range c.nodes {
			if from != to {
				c.relays[[2]int{from, to}] = startRelay(t, c.routeAddr(to))
			}
		}
	}
	// Each server picks its ports when it first starts (so no other
	// listener can take them between picking and binding) and keeps them
	// across restarts.
	for _, n := range c.nodes {
		s, err := c.start(n)
		if err != nil {
			t.Fatalf("clustertest: %v", err)
		}
		c.mu.Lock()
		n.srv = s
		n.clientPort = s.Addr().(*net.TCPAddr).Port
		n.routePort = s.ClusterAddr().Port
		c.mu.Unlock()
	}
	c.WaitReady(t, 40*time.Second)
	return c
}

// routeAddr returns where a node's cluster listener is, once it is known.
func (c *Cluster) routeAddr(i int) func() (string, bool) {
	return func() (string, bool) {
		c.mu.Lock()
		defer c.mu.Unlock()
		port := c.nodes[i].routePort
		return fmt.Sprintf("127.0.0.1:%d", port), port != 0
	}
}

// options builds a fresh server.Options for a node: the server keeps and
// changes the Options it is given, so a restart needs new ones.
func (c *Cluster) options(n *node) *server.Options {
	from := c.index(n)
	routes := make([]string, 0, len(c.nodes)-1)
	for to := range c.nodes {
		if to != from {
			routes = append(routes, "nats-route://"+c.relays[[2]int{from, to}].addr())
		}
	}
	c.mu.Lock()
	clientPort, routePort := n.clientPort, n.routePort
	c.mu.Unlock()
	if clientPort == 0 {
		clientPort, routePort = server.RANDOM_PORT, server.RANDOM_PORT
	}
	return &server.Options{
		ServerName:         n.name,
		Host:               "127.0.0.1",
		Port:               clientPort,
		JetStream:          true,
		JetStreamMaxMemory: 256 << 20,
		JetStreamMaxStore:  2 << 30,
		StoreDir:           n.storeDir,
		Cluster: server.ClusterOpts{
			Name: ClusterName,
			Host: "127.0.0.1",
			Port: routePort,
			// Servers tell each other where to reach a server they have just
			// met (gossip). Every server already has explicit routes through
			// the relays to all the others, and a gossiped address would
			// bypass the relays: advertise one where nothing listens, so
			// that a gossiped connection attempt fails at once.
			Advertise: unreachable,
		},
		Routes: server.RoutesFromStr(strings.Join(routes, ",")),
		NoSigs: true,
		NoLog:  true,
	}
}

// unreachable is a loopback address where nothing listens (port 1, tcpmux,
// privileged and unused).
const unreachable = "127.0.0.1:1"

func (c *Cluster) index(n *node) int {
	for i, x := range c.nodes {
		if x == n {
			return i
		}
	}
	panic("clustertest: unknown node")
}

func (c *Cluster) start(n *node) (*server.Server, error) {
	opts := c.options(n)
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("new server %s: %w", n.name, err)
	}
	if os.Getenv("JETBOX_CLUSTERTEST_LOG") != "" {
		s.SetLogger(stderrLogger(n.name), false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		s.WaitForShutdown()
		return nil, fmt.Errorf("server %s not ready for connections on 127.0.0.1:%d", n.name, n.clientPort)
	}
	return s, nil
}

func (c *Cluster) shutdown() {
	c.mu.Lock()
	var running []*server.Server
	for _, n := range c.nodes {
		if n.srv != nil {
			running = append(running, n.srv)
			n.srv = nil
		}
	}
	c.mu.Unlock()
	for _, s := range running {
		s.Shutdown()
	}
	for _, s := range running {
		s.WaitForShutdown()
	}
	for _, r := range c.relays {
		r.close()
	}
}

// Servers returns the running servers, in name order.
func (c *Cluster) Servers() []*server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*server.Server
	for _, n := range c.nodes {
		if n.srv != nil {
			out = append(out, n.srv)
		}
	}
	return out
}

// URLs is the client URLs of all three servers, running or not,
// comma-separated for nats.Connect.
func (c *Cluster) URLs() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	urls := make([]string, 0, len(c.nodes))
	for _, n := range c.nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.clientPort))
	}
	return strings.Join(urls, ",")
}

// Connect opens a client connection to the cluster that reconnects forever
// and quickly; it is closed at the end of the test. opts come after the
// defaults, so they can override them.
func (c *Cluster) Connect(t testing.TB, opts ...nats.Option) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	opts = append([]nats.Option{
		nats.MaxReconnects(-1),
		nats.ReconnectWait(50 * time.Millisecond),
		nats.ReconnectJitter(50*time.Millisecond, 50*time.Millisecond),
	}, opts...)
	nc, err := nats.Connect(c.URLs(), opts...)
	if err != nil {
		t.Fatalf("clustertest: connect to %s: %v", c.URLs(), err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("clustertest: jetstream: %v", err)
	}
	return nc, js
}

// MetaLeader returns the running server that leads the JetStream meta
// group, or nil while there is none.
func (c *Cluster) MetaLeader() *server.Server {
	for _, s := range c.Servers() {
		if s.Running() && s.JetStreamIsLeader() {
			return s
		}
	}
	return nil
}

// StreamLeader returns the running server that leads the stream's raft
// group, or nil while there is none. The default account is DefaultAccount.
func (c *Cluster) StreamLeader(account, stream string) *server.Server {
	for _, s := range c.Servers() {
		if s.Running() && s.JetStreamIsStreamLeader(account, stream) {
			return s
		}
	}
	return nil
}

// ConsumerLeader returns the running server that leads the consumer's raft
// group, or nil while there is none.
func (c *Cluster) ConsumerLeader(account, stream, consumer string) *server.Server {
	for _, s := range c.Servers() {
		if s.Running() && s.JetStreamIsConsumerLeader(account, stream, consumer) {
			return s
		}
	}
	return nil
}

// WaitReady waits until there is a meta leader that sees all three
// servers, every running server's meta state is current, and a client can
// read its JetStream account info.
func (c *Cluster) WaitReady(t testing.TB, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	wait := func(what string, cond func() bool) {
		t.Helper()
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("clustertest: timed out after %s waiting for %s", within, what)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	wait("a meta leader that sees all servers, and every server current", func() bool {
		leader := c.MetaLeader()
		if leader == nil || len(leader.JetStreamClusterPeers()) != Size {
			return false
		}
		for _, s := range c.Servers() {
			if !s.JetStreamIsCurrent() {
				return false
			}
		}
		return true
	})
	nc, err := nats.Connect(c.URLs())
	if err != nil {
		t.Fatalf("clustertest: connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("clustertest: jetstream: %v", err)
	}
	wait("JetStream account info", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})
}

// WaitStreamLeader waits until a running server leads the stream and
// returns it.
func (c *Cluster) WaitStreamLeader(t testing.TB, account, stream string, within time.Duration) *server.Server {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		if s := c.StreamLeader(account, stream); s != nil {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: no leader for stream %s/%s after %s", account, stream, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// WaitStreamCurrent waits until every running server holds the stream and
// has caught up with its leader.
func (c *Cluster) WaitStreamCurrent(t testing.TB, account, stream string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		current := c.StreamLeader(account, stream) != nil
		for _, s := range c.Servers() {
			current = current && s.JetStreamIsStreamCurrent(account, stream)
		}
		if current {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: stream %s/%s not current on every server after %s", account, stream, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func (c *Cluster) nodeOf(s *server.Server) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.nodes {
		if n.srv == s && s != nil {
			return n
		}
	}
	return nil
}

// Stop shuts a server down cleanly and waits until it is gone: the raft
// groups it leads hand their leadership over before it goes. Its data stays
// for Restart.
func (c *Cluster) Stop(s *server.Server) {
	n := c.nodeOf(s)
	if n == nil {
		c.t.Fatalf("clustertest: Stop: %v is not a running server of this cluster", s)
	}
	s.Shutdown()
	s.WaitForShutdown()
	c.mu.Lock()
	n.srv = nil
	c.mu.Unlock()
}

// Crash takes a server away the way a killed process or a lost host does:
// it cuts the server's routes, checks it has none left, then shuts it down
// (its clients see their connection close). The leadership hand-over of the
// shutdown cannot reach the other servers, so they elect new leaders only
// after the election timeout. Its data stays for Restart, which also
// reconnects its routes.
func (c *Cluster) Crash(t testing.TB, s *server.Server) {
	t.Helper()
	n := c.nodeOf(s)
	if n == nil {
		t.Fatalf("clustertest: Crash: %v is not a running server of this cluster", s)
	}
	c.setIsolated(n, true)
	deadline := time.Now().Add(5 * time.Second)
	for s.NumRoutes() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: Crash: %s still has %d routes after its relays were cut", n.name, s.NumRoutes())
		}
		time.Sleep(time.Millisecond)
	}
	s.Shutdown()
	s.WaitForShutdown()
	c.mu.Lock()
	n.srv = nil
	c.mu.Unlock()
}

// setIsolated cuts (or restores) every route from and to a node.
func (c *Cluster) setIsolated(n *node, cut bool) {
	i := c.index(n)
	for pair, r := range c.relays {
		if pair[0] == i || pair[1] == i {
			r.setCut(cut)
		}
	}
}

// Restart starts a stopped server again with the same name, ports and store
// dir, and waits until it is back in the cluster with current meta state.
// A running server is stopped first.
func (c *Cluster) Restart(t testing.TB, s *server.Server) *server.Server {
	t.Helper()
	c.mu.Lock()
	var n *node
	for _, x := range c.nodes {
		if x.srv == s || (x.srv == nil && s != nil && x.name == s.Name()) {
			n = x
			break
		}
	}
	c.mu.Unlock()
	if n == nil {
		t.Fatalf("clustertest: Restart: %v is not a server of this cluster", s)
	}
	if n.srv != nil {
		c.Stop(n.srv)
	}
	c.setIsolated(n, false)
	var (
		ns  *server.Server
		err error
	)
	// Another process may have taken a port meanwhile for a moment.
	for attempt := 1; ; attempt++ {
		if ns, err = c.start(n); err == nil {
			break
		}
		if attempt == 3 {
			t.Fatalf("clustertest: restart %s: %v", n.name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.mu.Lock()
	n.srv = ns
	c.mu.Unlock()
	c.WaitReady(t, 40*time.Second)
	return ns
}

// stderrLogger prints a server's log lines with its name. Unlike the
// server's own logger, its Fatalf does not exit the test binary.
type stderrLogger string

func (l stderrLogger) logf(level, format string, v ...any) {
	fmt.Fprintf(os.Stderr, "%s [%s] %s %s\n", time.Now().Format("15:04:05.000"), string(l), level, fmt.Sprintf(format, v...))
}

func (l stderrLogger) Noticef(format string, v ...any) { l.logf("INF", format, v...) }
func (l stderrLogger) Warnf(format string, v ...any)   { l.logf("WRN", format, v...) }
func (l stderrLogger) Fatalf(format string, v ...any)  { l.logf("FTL", format, v...) }
func (l stderrLogger) Errorf(format string, v ...any)  { l.logf("ERR", format, v...) }
func (l stderrLogger) Debugf(format string, v ...any)  { l.logf("DBG", format, v...) }
func (l stderrLogger) Tracef(format string, v ...any)  { l.logf("TRC", format, v...) }

// ReplicaState is the state of a stream as one server holds it (its own
// replica, which may lag behind the leader), from the server's monitoring
// data; ok is false when the server holds no such stream.
func ReplicaState(s *server.Server, account, stream string) (state server.StreamState, ok bool) {
	detail, err := s.JszAccount(&server.JSzOptions{Account: account, Streams: true})
	if err != nil || detail == nil {
		return state, false
	}
	for _, sd := range detail.Streams {
		if sd.Name == stream {
			return sd.State, true
		}
	}
	return state, false
}

// MoveConsumerLeader asks the consumer's leader to hand the leadership to
// the server to (the JetStream API's leader stepdown with a preferred
// placement) and waits until to leads it. nc is any client connection of
// the consumer's account.
func (c *Cluster) MoveConsumerLeader(t testing.TB, nc *nats.Conn, stream, consumer string, to *server.Server) {
	t.Helper()
	c.moveLeader(t, nc, fmt.Sprintf("$JS.API.CONSUMER.LEADER.STEPDOWN.%s.%s", stream, consumer), to, func() bool {
		return to.JetStreamIsConsumerLeader(DefaultAccount, stream, consumer)
	})
}

// MoveStreamLeader is MoveConsumerLeader for a stream.
func (c *Cluster) MoveStreamLeader(t testing.TB, nc *nats.Conn, stream string, to *server.Server) {
	t.Helper()
	c.moveLeader(t, nc, "$JS.API.STREAM.LEADER.STEPDOWN."+stream, to, func() bool {
		return to.JetStreamIsStreamLeader(DefaultAccount, stream)
	})
}

func (c *Cluster) moveLeader(t testing.TB, nc *nats.Conn, subject string, to *server.Server, leads func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !leads() {
		if time.Now().After(deadline) {
			t.Fatalf("clustertest: %s did not move the leadership to %s", subject, to.Name())
		}
		req := fmt.Sprintf(`{"placement":{"preferred":%q}}`, to.Name())
		if msg, err := nc.Request(subject, []byte(req), 2*time.Second); err != nil {
			t.Logf("clustertest: %s: %v", subject, err)
		} else if strings.Contains(string(msg.Data), `"error"`) {
			t.Logf("clustertest: %s: %s", subject, msg.Data)
		}
		for end := time.Now().Add(2 * time.Second); !leads() && time.Now().Before(end); {
			time.Sleep(25 * time.Millisecond)
		}
	}
}
