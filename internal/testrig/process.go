package testrig

import (
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a program started here and stopped by its PID.
type Process struct {
	Cmd  *exec.Cmd
	done chan struct{} // closed once it has exited and its log is closed
}

// StartProcess starts bin with args and exactly the environment env, its
// output going to a new file at logPath.
func StartProcess(bin string, args, env []string, logPath string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &Process{Cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logFile.Close(); close(p.done) }()
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM and waits for the process to exit; after a minute it
// sends SIGKILL.
func (p *Process) Stop() {
	if p.Exited() {
		return
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
	}
}

// Kill sends SIGKILL and waits until the process is gone: a crash, with no
// draining and nothing flushed.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
