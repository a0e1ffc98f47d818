package consumer

import (
	"testing"
	"time"
)

func TestLanesLetOnlyTheEarliestPendingWriteThrough(t *testing.T) {
	l := newLanes(time.Second)
	k := laneKey{"t", "1,2,3"}
	now := time.Unix(1000, 0)

	if behind := l.enter(k, 10, now); behind != 0 {
		t.Fatalf("first write put back for %s", behind)
	}
	// A later write while 10 is in flight goes back.
	if behind := l.enter(k, 11, now); behind < minBehind {
		t.Fatalf("write 11 entered while 10 was in flight (behind %s)", behind)
	}
	// 10 fails and is due again in 200ms: 12 must wait at least that long.
	l.leave(k, 10, 200*time.Millisecond, now)
	if behind := l.enter(k, 12, now); behind < 200*time.Millisecond {
		t.Fatalf("write 12 would come back after %s, before 10 is due", behind)
	}
	// 11 comes back before 10: still behind 10.
	if behind := l.enter(k, 11, now.Add(100*time.Millisecond)); behind == 0 {
		t.Fatal("write 11 overtook write 10")
	}
	// 10 comes back and is applied; then 11 goes before 12.
	now = now.Add(250 * time.Millisecond)
	if behind := l.enter(k, 10, now); behind != 0 {
		t.Fatalf("write 10 put back on its retry (%s)", behind)
	}
	l.leave(k, 10, 0, now)
	if behind := l.enter(k, 12, now.Add(time.Second/2)); behind == 0 {
		t.Fatal("write 12 overtook write 11")
	}
	if behind := l.enter(k, 11, now.Add(time.Second/2)); behind != 0 {
		t.Fatalf("write 11 held back with nothing earlier pending (%s)", behind)
	}
	// Another memory is never held back by this one.
	if behind := l.enter(laneKey{"t", "9,9,9"}, 13, now); behind != 0 {
		t.Fatal("a write to another memory was held back")
	}
}

func TestLanesForgetWritesThatNeverComeBack(t *testing.T) {
	l := newLanes(time.Second)
	k := laneKey{"t", "0,0,0"}
	now := time.Unix(1000, 0)
	l.enter(k, 1, now)
	l.leave(k, 1, 100*time.Millisecond, now)
	// Write 1 went to another worker; after its due time plus grace, write
	// 2 is no longer held behind it.
	if behind := l.enter(k, 2, now.Add(2*time.Second)); behind != 0 {
		t.Fatalf("held behind a write gone for good (%s)", behind)
	}
	l.leave(k, 2, 0, now.Add(2*time.Second))
	l.sweep(now.Add(10 * time.Second))
	if n := len(l.m); n != 0 {
		t.Fatalf("%d lanes left after everything settled", n)
	}
}
