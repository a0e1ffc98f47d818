package jspull

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var poisons = []struct{ status, description string }{
	{"409", "Consumer Deleted"},
	{"408", "Request Timeout"},
	{"100", "Idle Heartbeat"},
	{"404", "No Messages"},
	{"400", "Bad Request"},
	{"423", "Nats-Pin-Id mismatch"},
}

// A stored write with an empty body and a Status header is a write like any
// other, and the writes after it come too.
func TestStoredStatusHeadersAreWrites(t *testing.T) {
	for _, p := range poisons {
		t.Run(p.status, func(t *testing.T) {
			e := newEnv(t)
			e.consumer(t, "C")
			e.consumer(t, "NATSGO")
			e.publish(t, "", poisonHeader(p.status, p.description))
			e.publishN(t, 5, "w%d")

			it := e.messages(t, "C", Expiry(2*time.Second), MaxMessages(10))
			for i := range 6 {
				m := mustNext(t, it, 5*time.Second)
				if i == 0 {
					if len(m.Data()) != 0 || m.Headers().Get("Status") != p.status {
						t.Fatalf("first delivery %q %v, want the empty write with Status %s", m.Data(), m.Headers(), p.status)
					}
				} else if got, want := string(m.Data()), fmt.Sprintf("w%d", i-1); got != want {
					t.Fatalf("delivery %d = %q, want %q", i, got, want)
				}
				if err := m.Ack(); err != nil {
					t.Fatal(err)
				}
			}
			natsGoMessages(t, e, p.status)
		})
	}
}

// natsGoMessages documents what nats.go's own iterator does with the same
// stream: it never hands out the empty write (and with 409 Consumer
// Deleted ends). It logs rather than fails, so that a fixed nats.go shows
// up as a log line, not as a confusing failure.
func natsGoMessages(t *testing.T, e *env, status string) {
	c, err := e.js.Consumer(ctxT(t), testStream, "NATSGO")
	if err != nil {
		t.Fatal(err)
	}
	it, err := c.Messages(jetstream.PullMaxMessages(10), jetstream.PullExpiry(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer it.Stop()
	var got []string
	var ended error
	for len(got) < 6 && ended == nil {
		m, err := it.Next(jetstream.NextMaxWait(time.Second))
		switch {
		case errors.Is(err, nats.ErrTimeout):
			ended = err
		case err != nil:
			ended = err
		default:
			got = append(got, fmt.Sprintf("%q", m.Data()))
			_ = m.Ack()
		}
	}
	if len(got) > 0 && got[0] == `""` {
		t.Logf("nats.go %s: delivered the stored Status %s write; the upstream bug looks fixed", natsGoVersion(), status)
		return
	}
	t.Logf("nats.go %s, stored Status %s write: not delivered; delivered %v, then %v", natsGoVersion(), status, got, ended)
}

// natsGoVersion is the nats.go module version the test binary was built
// with, read from the source path of one of its functions.
func natsGoVersion() string {
	file, _ := runtime.FuncForPC(reflect.ValueOf(nats.Connect).Pointer()).FileLine(0)
	if _, v, ok := strings.Cut(file, "nats.go@"); ok {
		version, _, _ := strings.Cut(v, "/")
		return version
	}
	return "(unknown version)"
}

// A message on the inbox that is neither stored (ack reply subject) nor a
// status (no reply subject) is ignored and counted.
func TestStrayMessagesAreIgnored(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C")
	it := e.messages(t, "C", Expiry(2*time.Second))
	h := poisonHeader("409", "Consumer Deleted")
	if err := e.nc.PublishMsg(&nats.Msg{Subject: it.inbox, Reply: "elsewhere", Header: h}); err != nil {
		t.Fatal(err)
	}
	e.publish(t, "w", nil)
	m := mustNext(t, it, 5*time.Second)
	if string(m.Data()) != "w" {
		t.Fatalf("got %q, want the stored write", m.Data())
	}
	if got := it.Stats().Ignored; got != 1 {
		t.Fatalf("Ignored = %d, want 1", got)
	}
}

// The server deleting the consumer is reported, and pulling goes on: once
// the consumer is back, writes flow again.
func TestConsumerDeletedIsReportedAndPullingGoesOn(t *testing.T) {
	e := newEnv(t)
	e.consumer(t, "C")
	it := e.messages(t, "C", Expiry(2*time.Second))
	if _, err := next(it, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Next on an empty consumer: %v, want a time-out", err)
	}
	if err := e.js.DeleteConsumer(ctxT(t), testStream, "C"); err != nil {
		t.Fatal(err)
	}
	_, err := next(it, 5*time.Second)
	if !errors.Is(err, jetstream.ErrConsumerDeleted) {
		t.Fatalf("Next after the consumer was deleted: %v, want ErrConsumerDeleted", err)
	}
	var se *StatusError
	if !errors.As(err, &se) || se.Code != "409" {
		t.Fatalf("error %v is not a 409 StatusError", err)
	}
	e.consumer(t, "C")
	e.publish(t, "after", nil)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		m, err := next(it, time.Second)
		if err == nil {
			if string(m.Data()) != "after" {
				t.Fatalf("got %q, want the write stored after the consumer came back", m.Data())
			}
			return
		}
		if !errors.Is(err, nats.ErrNoResponders) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Next while the consumer is missing: %v", err)
		}
	}
	t.Fatal("no write after the consumer came back")
}
