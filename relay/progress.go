package relay

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// progress reports the backfill: on a terminal a bar redrawn in place
// every 200ms, elsewhere a line every 5 seconds.
type progress struct {
	out   io.Writer
	term  bool
	total int64
	done  *atomic.Int64 // rows marked sent or failed so far
	base  int64
	start time.Time
	quit  chan struct{}
	wg    sync.WaitGroup
}

func newProgress(out io.Writer, term bool, total int64, done *atomic.Int64) *progress {
	p := &progress{out: out, term: term, total: total, done: done, base: done.Load(), start: time.Now(), quit: make(chan struct{})}
	if out == nil || total == 0 {
		return p
	}
	every := 5 * time.Second
	if term {
		every = 200 * time.Millisecond
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-p.quit:
				p.draw(true)
				return
			case <-t.C:
				p.draw(false)
			}
		}
	}()
	return p
}

func (p *progress) stop() {
	close(p.quit)
	p.wg.Wait()
}

// draw writes "rows done/total (pct) rate rows/s, time left".
func (p *progress) draw(final bool) {
	n := min(p.done.Load()-p.base, p.total)
	elapsed := time.Since(p.start)
	rate := float64(n) / max(elapsed.Seconds(), 1e-3)
	left := "?"
	if rate > 0 {
		left = time.Duration(float64(p.total-n) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100 * float64(n) / float64(p.total)
	if !p.term {
		fmt.Fprintf(p.out, "relay backfill: %d/%d rows (%.1f%%), %.0f rows/s, %s left\n", n, p.total, pct, rate, left)
		return
	}
	const width = 30
	filled := int(pct / 100 * width)
	bar := make([]byte, width)
	for i := range bar {
		bar[i] = ' '
		if i < filled {
			bar[i] = '#'
		}
	}
	fmt.Fprintf(p.out, "\rbackfill [%s] %d/%d rows %5.1f%% %7.0f rows/s %8s left ", bar, n, p.total, pct, rate, left)
	if final {
		fmt.Fprintln(p.out)
	}
}
