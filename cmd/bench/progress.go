package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progressOut is where progress bars go; the tests silence them.
var progressOut io.Writer = os.Stderr

// progress is a one-line bar on stderr, redrawn with \r a few times a second.
type progress struct {
	label string
	total int
	n     atomic.Int64
	start time.Time
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

func newProgress(label string, total int) *progress {
	return newProgressSince(label, total, time.Now())
}

// newProgressSince is a bar whose rate counts from start.
func newProgressSince(label string, total int, start time.Time) *progress {
	p := &progress{label: label, total: total, start: start, stop: make(chan struct{})}
	p.wg.Go(func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.draw()
			}
		}
	})
	return p
}

func (p *progress) add(n int) { p.n.Add(int64(n)) }

func (p *progress) set(n int) { p.n.Store(int64(n)) }

func (p *progress) draw() {
	const width = 30
	n := int(min(p.n.Load(), int64(p.total)))
	filled := 0
	if p.total > 0 {
		filled = width * n / p.total
	}
	elapsed := time.Since(p.start)
	rate := float64(n) / max(elapsed.Seconds(), 1e-9)
	fmt.Fprintf(progressOut, "\r%-34s [%s%s] %7d/%-7d %8.0f/s %6.1fs ",
		p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), n, p.total, rate, elapsed.Seconds())
}

// done draws the bar a last time and ends its line.
func (p *progress) done() {
	p.once.Do(func() {
		close(p.stop)
		p.wg.Wait()
		p.draw()
		fmt.Fprintln(progressOut)
	})
}
