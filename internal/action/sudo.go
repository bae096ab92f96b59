package action

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/muster-run/muster"
)

// escalation runs a command as another user through sudo, answering sudo's
// password prompt itself. The password goes only to the process's stdin:
// it is never part of a command line, never echoed and never logged.
type escalation struct {
	exe      string
	user     string
	password string
	prompt   string
	marker   string
}

// runAsUser returns the user an action on t runs as through sudo, or ""
// when no escalation is needed: run-as is unset, or names the login user
// (as in Bolt).
func runAsUser(t *muster.Target, opts Options) string {
	user := opts.RunAs
	if user == "" {
		user = configString(t, "run-as")
	}
	if user == t.User {
		return ""
	}
	return user
}

// newEscalation returns nil when no escalation is needed (see runAsUser).
func newEscalation(t *muster.Target, opts Options) *escalation {
	user := runAsUser(t, opts)
	if user == "" {
		return nil
	}
	pw := opts.SudoPassword
	if pw == "" {
		pw = configString(t, "sudo-password")
	}
	if pw == "" {
		pw = configString(t, "password")
	}
	exe := configString(t, "sudo-executable")
	if exe == "" {
		exe = "sudo"
	}
	nonce := randomToken()
	return &escalation{
		exe:      exe,
		user:     user,
		password: pw,
		prompt:   "[sudo] muster needs to run as another user, password (" + nonce + "): ",
		marker:   "muster-escalated-" + nonce,
	}
}

func randomToken() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return hex.EncodeToString(b[:])
}

var (
	errNoPassword  = errors.New("no sudo password")
	errBadPassword = errors.New("wrong sudo password")
)

func (e *escalation) exec(ctx context.Context, tr muster.Transport, t *muster.Target, line string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	wrapped := fmt.Sprintf("%s -S -H -u %s -p %s sh -c %s", quote(e.exe), quote(e.user), quote(e.prompt),
		quote("echo "+e.marker+" 1>&2; "+line))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	inR, inW := io.Pipe()
	f := &sudoFilter{e: e, out: stderr, in: inW, stdin: stdin, cancel: cancel}
	code, err := tr.Exec(ctx, t, &muster.Command{Line: wrapped, Stdin: inR, Stdout: stdout, Stderr: f})
	f.flush()
	if c, ok := stdin.(io.Closer); ok {
		_ = c.Close() // a held input (see heldInput) blocks the copy below until closed
	}
	_ = inR.CloseWithError(io.ErrClosedPipe) // unblocks any writer still feeding stdin
	f.wg.Wait()

	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errNoPassword):
		return -1, muster.Errorf(muster.KindEscalate, "sudo on %s asked for a password to run as %s, but none was given: set sudo-password or use --sudo-password-prompt", t.Name, e.user).WithCode("NO_PASSWORD")
	case errors.Is(cause, errBadPassword):
		return -1, muster.Errorf(muster.KindEscalate, "sudo on %s rejected the password for running as %s", t.Name, e.user).WithCode("BAD_PASSWORD")
	}
	if err != nil {
		return code, err
	}
	if !f.escalated() {
		msg := strings.TrimSpace(f.seen.String())
		issue := "SUDO_ERROR"
		if strings.Contains(msg, "sudoers") || strings.Contains(msg, "not allowed") {
			issue = "SUDO_DENIED"
		}
		if msg == "" {
			msg = fmt.Sprintf("exit code %d", code)
		}
		return -1, muster.Errorf(muster.KindEscalate, "could not run as %s on %s with %s: %s", e.user, t.Name, e.exe, msg).WithCode(issue)
	}
	return code, nil
}

// sudoFilter sits on the command's stderr. It answers the password prompt,
// starts the real stdin once the marker shows that sudo let the command
// run, and removes both the prompt and the marker from what the user sees.
type sudoFilter struct {
	e       *escalation
	out     io.Writer
	in      *io.PipeWriter
	stdin   io.Reader
	cancel  context.CancelCauseFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	pending []byte
	prompts int
	through bool         // marker seen: pass everything on untouched
	seen    bytes.Buffer // stderr before the marker, for error messages
}

func (f *sudoFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.through {
		return f.forward(p)
	}
	f.pending = append(f.pending, p...)
	for !f.through {
		if i := bytes.Index(f.pending, []byte(f.e.prompt)); i >= 0 {
			f.pending = append(f.pending[:i], f.pending[i+len(f.e.prompt):]...)
			f.answer()
			continue
		}
		nl := bytes.IndexByte(f.pending, '\n')
		if nl < 0 {
			break
		}
		line := f.pending[:nl+1]
		f.pending = f.pending[nl+1:]
		if strings.TrimSpace(string(line)) == f.e.marker {
			f.through = true
			f.startInput()
			break
		}
		f.seen.Write(line)
		if _, err := f.forward(line); err != nil {
			return 0, err
		}
	}
	if f.through && len(f.pending) > 0 {
		rest := f.pending
		f.pending = nil
		return len(p), f.forwardErr(rest)
	}
	return len(p), nil
}

func (f *sudoFilter) forwardErr(p []byte) error { _, err := f.forward(p); return err }

func (f *sudoFilter) forward(p []byte) (int, error) {
	if f.out == nil {
		return len(p), nil
	}
	return f.out.Write(p)
}

// answer responds to one password prompt. Called with f.mu held.
func (f *sudoFilter) answer() {
	f.prompts++
	switch {
	case f.e.password == "":
		f.cancel(errNoPassword)
	case f.prompts > 1:
		f.cancel(errBadPassword) // never retry: one wrong answer is enough
	default:
		pw := f.e.password
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			_, _ = io.WriteString(f.in, pw+"\n") // fails only when the command already ended
		}()
	}
}

// startInput copies the real stdin, then closes the input. Called with f.mu held.
func (f *sudoFilter) startInput() {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if f.stdin != nil {
			_, _ = io.Copy(f.in, f.stdin) // fails only when the command already ended
		}
		_ = f.in.Close()
	}()
}

func (f *sudoFilter) escalated() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.through
}

// flush passes on any partial line left when the command ends.
func (f *sudoFilter) flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.pending) > 0 {
		f.seen.Write(f.pending)
		_, _ = f.forward(f.pending)
		f.pending = nil
	}
	if !f.through {
		_ = f.in.Close()
	}
}
