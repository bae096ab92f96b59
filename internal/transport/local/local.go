// Package local is the muster.Transport for the machine muster runs on. It
// runs each command with /bin/sh -c in its own process group, so that
// cancelling the context signals the command and everything it started.
package local

import (
	"context"
	"errors"
	"io"
	"os/exec"
	"syscall"
	"time"

	"github.com/muster-run/muster"
)

// killGrace is how long a cancelled command has between SIGTERM and SIGKILL,
// and how long Exec waits for output pipes held open by background children.
const killGrace = 5 * time.Second

// Transport runs commands on the local machine.
type Transport struct{}

var _ muster.Transport = (*Transport)(nil)

// New returns a local transport.
func New() *Transport { return &Transport{} }

// Exec runs cmd.Line with /bin/sh -c. Cancelling ctx sends SIGTERM to the
// command's process group and closes its stdin, then sends SIGKILL after a
// grace period. When muster itself dies, the command's stdin reaches EOF.
func (l *Transport) Exec(ctx context.Context, t *muster.Target, cmd *muster.Command) (int, error) {
	if err := ctx.Err(); err != nil {
		return -1, muster.ContextError(ctx, "command on "+t.Name)
	}
	c := exec.Command("/bin/sh", "-c", cmd.Line)
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var stdin io.WriteCloser
	if cmd.Stdin != nil {
		var err error
		if stdin, err = c.StdinPipe(); err != nil {
			return -1, muster.Errorf(muster.KindInternal, "stdin pipe for %s: %w", t.Name, err)
		}
	} // else /dev/null: an empty, closed input
	c.Stdout = writerOrDiscard(cmd.Stdout)
	c.Stderr = writerOrDiscard(cmd.Stderr)
	c.WaitDelay = killGrace
	if err := c.Start(); err != nil {
		return -1, muster.Errorf(muster.KindConnect, "cannot start /bin/sh on %s: %w", t.Name, err)
	}
	if stdin != nil {
		// Not waited for: per the Transport contract, a blocked Read on
		// cmd.Stdin is the caller's to unblock after Exec returns.
		go func() {
			_, _ = io.Copy(stdin, cmd.Stdin) // EPIPE once the command exits
			_ = stdin.Close()
		}()
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-done:
		case <-ctx.Done():
			pgid := c.Process.Pid
			_ = syscall.Kill(-pgid, syscall.SIGTERM) // the group may already be gone
			if stdin != nil {
				// End of input tells a program watching its stdin (as muster's
				// actions do) that its client is gone, at once; it may have
				// moved its work to a process group of its own.
				_ = stdin.Close()
			}
			select {
			case <-done:
			case <-time.After(killGrace):
				_ = syscall.Kill(-pgid, syscall.SIGKILL)
			}
		}
	}()
	err := c.Wait()
	close(done)
	<-stopped
	if ctx.Err() != nil {
		return -1, muster.ContextError(ctx, "command on "+t.Name)
	}
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	case errors.Is(err, exec.ErrWaitDelay):
		// The command exited but a background child kept its output open.
		return c.ProcessState.ExitCode(), nil
	default:
		return -1, muster.Errorf(muster.KindInternal, "running command on %s: %w", t.Name, err)
	}
}

// Close does nothing: the local transport holds no connections.
func (l *Transport) Close() error { return nil }

func writerOrDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}
