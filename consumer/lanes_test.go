package consumer

import (
	"context"
	"testing"
	"time"
)

func TestLanesLetOnlyTheEarliestHeldWriteRun(t *testing.T) {
	l := newLanes()
	k := laneKey{"t", "1,2,3"}
	w10 := l.expect(k, 10)
	w12 := l.expect(k, 12)
	w11 := l.expect(k, 11) // a redelivery of an earlier write, arriving late
	other := l.expect(laneKey{"t", "9,9,9"}, 13)

	mustRun(t, l, w10)
	mustRun(t, l, other) // another memory is never held back by this one
	mustWait(t, l, w11)
	mustWait(t, l, w12)

	l.leave(w10)
	mustRun(t, l, w11) // 11 goes before 12, whatever order they arrived in
	mustWait(t, l, w12)
	l.leave(w11)
	mustRun(t, l, w12)
	l.leave(w12)
	l.leave(other)
	if n := l.len(); n != 0 {
		t.Fatalf("%d lanes left after everything settled", n)
	}
}

func TestLanesNeverOvertakeARunningHead(t *testing.T) {
	l := newLanes()
	k := laneKey{"t", "1,2,3"}
	w20 := l.expect(k, 20)
	mustRun(t, l, w20)
	w15 := l.expect(k, 15)
	mustWait(t, l, w15)
	// A write handed back while waiting leaves without disturbing the head.
	w30 := l.expect(k, 30)
	l.leave(w30)
	mustWait(t, l, w15)
	l.leave(w20)
	mustRun(t, l, w15)
}

func mustRun(t *testing.T, l *lanes, w *turn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.wait(ctx, w); err != nil {
		t.Fatalf("write %d may not run: %v", w.seq, err)
	}
}

func mustWait(t *testing.T, l *lanes, w *turn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.wait(ctx, w); err == nil {
		t.Fatalf("write %d may run while an earlier write to its memory is held", w.seq)
	}
}
