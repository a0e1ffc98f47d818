package clustertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func TestClusterReplicatedStreamSurvivesLosingItsLeader(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 3-node clusters")
	}
	t.Run("stop", func(t *testing.T) { testLosingTheLeader(t, false) })
	t.Run("crash", func(t *testing.T) { testLosingTheLeader(t, true) })
}

func testLosingTheLeader(t *testing.T, crash bool) {
	c := Start(t)
	if n := len(c.Servers()); n != Size {
		t.Fatalf("%d servers running, want %d", n, Size)
	}
	names := map[string]bool{}
	for _, s := range c.Servers() {
		names[s.Name()] = true
		if !s.JetStreamIsClustered() {
			t.Fatalf("server %s is not clustered", s.Name())
		}
	}
	if len(names) != Size {
		t.Fatalf("server names %v are not distinct", names)
	}
	_, js := c.Connect(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	stream, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "R3", Subjects: []string{"r3.>"}, Replicas: 3})
	if err != nil {
		t.Fatalf("create stream: %v", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || info.Cluster.Name != ClusterName || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream info: replicas %d, cluster %+v; want 3 replicas on %s", info.Config.Replicas, info.Cluster, ClusterName)
	}
	for i := 0; i < 100; i++ {
		if _, err := js.Publish(ctx, fmt.Sprintf("r3.before.%d", i), []byte("x")); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}

	leader := c.WaitStreamLeader(t, DefaultAccount, "R3", 10*time.Second)
	if info.Cluster.Leader != leader.Name() {
		t.Fatalf("stream info says leader %q, the servers say %q", info.Cluster.Leader, leader.Name())
	}
	name := leader.Name()
	stopped := time.Now()
	if crash {
		c.Crash(t, leader)
	} else {
		c.Stop(leader)
	}
	if n := len(c.Servers()); n != Size-1 {
		t.Fatalf("%d servers running after Stop, want %d", n, Size-1)
	}
	next := c.WaitStreamLeader(t, DefaultAccount, "R3", 30*time.Second)
	if next.Name() == name {
		t.Fatalf("the stopped server %s still leads", name)
	}
	t.Logf("new stream leader %s elected %s after %s was lost", next.Name(), time.Since(stopped).Round(time.Millisecond), name)

	// Two of three replicas are a quorum: the stream keeps taking writes.
	for i := 0; i < 100; i++ {
		if _, err := js.Publish(ctx, fmt.Sprintf("r3.during.%d", i), []byte("x")); err != nil {
			t.Fatalf("publish %d with one server down: %v", i, err)
		}
	}
	if info, err = stream.Info(ctx); err != nil || info.State.Msgs != 200 {
		t.Fatalf("with one server down: %v, state %+v; want 200 messages", err, info.State)
	}

	back := c.Restart(t, leader)
	if back.Name() != name || back.ClientURL() != leader.ClientURL() {
		t.Fatalf("restarted as %s on %s, want %s on %s", back.Name(), back.ClientURL(), name, leader.ClientURL())
	}
	c.WaitStreamCurrent(t, DefaultAccount, "R3", 30*time.Second)
	if n := len(c.Servers()); n != Size {
		t.Fatalf("%d servers running after Restart, want %d", n, Size)
	}
	// The restarted server caught up: every replica holds every message.
	for _, s := range c.Servers() {
		var state server.StreamState
		deadline := time.Now().Add(10 * time.Second)
		for {
			state, _ = ReplicaState(s, DefaultAccount, "R3")
			if state.Msgs == 200 || time.Now().After(deadline) {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if state.Msgs != 200 {
			t.Fatalf("server %s holds %d messages, want 200", s.Name(), state.Msgs)
		}
	}
}
