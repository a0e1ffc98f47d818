package lanes

import (
	"context"
	"testing"
	"time"
)

func TestLanesLetOnlyTheEarliestHeldWriteRun(t *testing.T) {
	l := New()
	expect := func(seq uint64) *Turn { return l.Expect("t", "1,2,3", seq) } // one memory
	w10 := expect(10)
	w12 := expect(12)
	w11 := expect(11) // a redelivery of an earlier write, arriving late
	other := l.Expect("t", "9,9,9", 13)

	mustRun(t, l, w10)
	mustRun(t, l, other) // another memory is never held back by this one
	mustWait(t, l, w11)
	mustWait(t, l, w12)

	l.Leave(w10)
	mustRun(t, l, w11) // 11 goes before 12, whatever order they arrived in
	mustWait(t, l, w12)
	l.Leave(w11)
	mustRun(t, l, w12)
	l.Leave(w12)
	l.Leave(other)
	if n := l.len(); n != 0 {
		t.Fatalf("%d lanes left after everything settled", n)
	}
}

func TestLanesNeverOvertakeARunningHead(t *testing.T) {
	l := New()
	expect := func(seq uint64) *Turn { return l.Expect("t", "1,2,3", seq) } // one memory
	w20 := expect(20)
	mustRun(t, l, w20)
	w15 := expect(15)
	mustWait(t, l, w15)
	// A write handed back while waiting leaves without disturbing the head.
	w30 := expect(30)
	l.Leave(w30)
	mustWait(t, l, w15)
	l.Leave(w20)
	mustRun(t, l, w15)
}

func mustRun(t *testing.T, l *Lanes, w *Turn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := l.Wait(ctx, w); err != nil {
		t.Fatalf("write %d may not run: %v", w.seq, err)
	}
}

func mustWait(t *testing.T, l *Lanes, w *Turn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx, w); err == nil {
		t.Fatalf("write %d may run while an earlier write to its memory is held", w.seq)
	}
}
