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
	"syscall"
	"time"
)

// WatermillReport is what bench/watermill prints: one JSON object. Only the
// figures the table uses are named; the whole object is kept in Raw.
type WatermillReport struct {
	Publish *struct { // absent with -phase drain, which publishes untimed
		PerSec float64 `json:"per_sec"`
	} `json:"publish"`
	Drain struct {
		N       int     `json:"n"`
		PerSec  float64 `json:"per_sec"`
		Seconds float64 `json:"seconds"`
	} `json:"drain"`
	CPUSeconds   float64         `json:"cpu_seconds"`    // the whole process: publishing and draining
	PeakRSSBytes float64         `json:"peak_rss_bytes"` // the whole process
	Raw          json.RawMessage `json:"raw"`
}

// watermillPhase runs the Watermill baseline (a module of its own under
// bench/watermill) against a fresh nats-server and memory API, so it shares
// neither streams nor stored memories with jetbox. The error says why it
// was skipped.
func (b *bench) watermillPhase(ctx context.Context) (*WatermillReport, error) {
	dir := b.opts.watermillDir
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return nil, fmt.Errorf("%s/go.mod not found", dir)
	}
	e, err := b.newEnvWithout(ctx)
	if err != nil {
		return nil, err
	}
	defer e.close()
	n := b.n(200000)
	args := []string{"run", ".", "-nats", e.nats.ClientURL(), "-api", e.apiURL, "-token", apiToken,
		"-n", strconv.Itoa(n), "-size", strconv.Itoa(b.opts.size), "-tenants", "1000", "-concurrency", "64", "-phase", "drain"}
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	// go run starts the program as its child: a process group of their
	// own lets a timeout stop both, by the group's id.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdout bytes.Buffer
	logPath := filepath.Join(b.work, "watermill.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = &stdout, logFile
	bar := newProgress("watermill: go run (publish + drain)", n)
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
			bar.set(e.applied.count())
		case <-timeout:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
			return nil, errors.New("timed out")
		case <-ctx.Done():
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-waited
			return nil, ctx.Err()
		}
	}
	bar.set(e.applied.count())
	if err != nil {
		return nil, fmt.Errorf("go run: %v (log: %s)", err, lastLine(logPath))
	}
	return parseWatermill(stdout.Bytes())
}

// parseWatermill reads the last JSON object of the output.
func parseWatermill(out []byte) (*WatermillReport, error) {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	start := len(lines) - 1
	for start > 0 && !strings.HasPrefix(strings.TrimSpace(lines[start]), "{") {
		start--
	}
	raw := []byte(strings.Join(lines[start:], "\n"))
	var r WatermillReport
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
	if r.Drain.PerSec <= 0 {
		return nil, errors.New(`its output has no "drain":{"per_sec":…}`)
	}
	r.Raw = raw
	return &r, nil
}

func lastLine(path string) string {
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1]
}
