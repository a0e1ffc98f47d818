package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// WatermillReport is the Watermill baseline: what bench/watermill printed
// when it published the backlog, and when a process of its own drained it.
type WatermillReport struct {
	Publish *watermillPublish `json:"publish"`
	Drain   watermillDrain    `json:"drain"`
	// Raw is everything the drain-only process printed.
	Raw json.RawMessage `json:"raw"`
}

// watermillOutput is the one JSON object bench/watermill prints; only the
// figures the table uses are named.
type watermillOutput struct {
	Publish *watermillPublish `json:"publish"` // absent in drain-only runs
	Drain   *watermillDrain   `json:"drain"`   // absent in publish runs
}

type watermillPublish struct {
	N      int     `json:"n"`
	PerSec float64 `json:"per_sec"`
}

// watermillDrain is a drain's figures. Those from ready start when the
// router runs (every subscription made), as jetbox's start at its /readyz.
type watermillDrain struct {
	N               int     `json:"n"`
	PerSec          float64 `json:"per_sec"` // from starting the router
	Seconds         float64 `json:"seconds"`
	ReadySeconds    float64 `json:"ready_seconds"`
	AppliedAtReady  int     `json:"applied_at_ready"`
	FromReadyPerSec float64 `json:"from_ready_per_sec"`
	CPUSeconds      float64 `json:"cpu_seconds"`    // the process's, from ready to the last write applied
	PeakRSSBytes    float64 `json:"peak_rss_bytes"` // the process's VmHWM; it published nothing
	Syscalls        float64 `json:"rw_syscalls"`    // bench/bare's read and write calls over the same interval
}

// cpuPerWrite is the drain-only process's CPU time per write applied after
// it was ready, in microseconds; 0 when there were none.
func (d watermillDrain) cpuPerWrite() float64 {
	if drained := d.N - d.AppliedAtReady; drained > 0 {
		return d.CPUSeconds * 1e6 / float64(drained)
	}
	return 0
}

// watermillPhase runs the Watermill baseline (a module of its own under
// bench/watermill, built here) against a fresh nats-server and memory API,
// so it shares neither streams nor stored memories with jetbox: one process
// publishes the drain's backlog and leaves it in the stream, then another
// drains it, so that the drain's CPU time and peak memory are its own. The
// error says why it was skipped.
func (b *bench) watermillPhase(ctx context.Context) (*WatermillReport, error) {
	dir := b.opts.watermillDir
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return nil, fmt.Errorf("%s/go.mod not found", dir)
	}
	bin := filepath.Join(b.work, "watermill")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build: %v\n%s", err, out)
	}
	e, err := b.newEnvWithout(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	n := b.n(drainBacklog)
	args := []string{"-nats", e.nats.ClientURL(), "-api", e.apiURL, "-token", apiToken,
		"-n", strconv.Itoa(n), "-size", strconv.Itoa(b.opts.size), "-tenants", strconv.Itoa(drainTenants), "-concurrency", strconv.Itoa(drainCallers)}
	published, err := b.runWatermill(ctx, e, bin, "watermill: publish the backlog", n, append(args, "-phase", "publish", "-keep-stream"))
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	pub, err := parseWatermill(published)
	if err != nil || pub.Publish == nil {
		return nil, fmt.Errorf("publish: no \"publish\" figures (%v)", err)
	}
	drained, err := b.runWatermill(ctx, e, bin, "watermill: drain only", n, append(args, "-phase", "drain-only"))
	if err != nil {
		return nil, fmt.Errorf("drain only: %w", err)
	}
	out, err := parseWatermill(drained)
	if err != nil {
		return nil, err
	}
	if out.Drain == nil || out.Drain.FromReadyPerSec <= 0 {
		return nil, errors.New(`its drain-only output has no "drain":{"from_ready_per_sec":…}`)
	}
	return &WatermillReport{Publish: pub.Publish, Drain: *out.Drain, Raw: drained}, nil
}

// runWatermill runs the built program with args and returns what it
// printed on stdout, showing on a bar the writes the memory API applied.
func (b *bench) runWatermill(ctx context.Context, e *env, bin, label string, n int, args []string) ([]byte, error) {
	cmd := exec.Command(bin, args...)
	var stdout bytes.Buffer
	logPath := filepath.Join(b.work, "watermill.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = &stdout, logFile
	before := e.applied.count()
	bar := newProgress(label, n)
	defer bar.done()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	timeout := time.After(max(5*time.Minute, time.Duration(float64(20*time.Minute)*b.scale)))
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for done := false; !done; {
		select {
		case err = <-waited:
			done = true
		case <-tick.C:
			bar.set(e.applied.count() - before)
		case <-timeout:
			_ = cmd.Process.Kill()
			<-waited
			return nil, errors.New("timed out")
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-waited
			return nil, ctx.Err()
		}
	}
	bar.set(e.applied.count() - before)
	if err != nil {
		return nil, fmt.Errorf("%v (log: %s)", err, lastLine(logPath))
	}
	return stdout.Bytes(), nil
}

// parseWatermill reads the last JSON object of the output.
func parseWatermill(out []byte) (*watermillOutput, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	start := len(lines) - 1
	for start > 0 && !strings.HasPrefix(strings.TrimSpace(lines[start]), "{") {
		start--
	}
	raw := []byte(strings.Join(lines[start:], "\n"))
	var r watermillOutput
	if err := json.Unmarshal(raw, &r); err != nil {
		// A multi-line object: take everything from the first brace.
		if i := bytes.IndexByte(out, '{'); i >= 0 {
			raw = bytes.TrimSpace(out[i:])
			err = json.Unmarshal(raw, &r)
		}
		if err != nil {
			return nil, fmt.Errorf("its output is not one JSON object: %v", err)
		}
	}
	if r.Publish == nil && r.Drain == nil {
		return nil, errors.New(`its output has neither "publish" nor "drain" figures`)
	}
	return &r, nil
}

func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}
