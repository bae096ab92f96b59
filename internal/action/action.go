// Package action turns muster's actions (command, script, file upload and
// download) into as few commands as possible for a POSIX shell on a target,
// and runs them over any muster.Transport. It owns privilege escalation
// (run-as through sudo), environment variables, temporary directories and
// the shape of each action's result.
package action

import (
	"bytes"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// Options apply to one action on every target.
type Options struct {
	// Env is exported to the command (command and script actions).
	Env map[string]string
	// RunAs overrides the target's run-as config when non-empty.
	RunAs string
	// SudoPassword overrides the target's sudo-password config when non-empty.
	SudoPassword string
	// TmpDir overrides the target's tmpdir config when non-empty.
	TmpDir string
	// Guard, when non-empty, names a lock the action holds on the target
	// while its work runs, until the work's whole process group is gone:
	// a second action with the same Guard on the same target (as the same
	// effective user) waits for it at most GuardWait, then fails with kind
	// muster.KindNotRun and issue code IssueGuardBusy, without running. The
	// server passes something like its queue id and the node name, so an
	// orphaned attempt can never overlap its retry. The target needs flock
	// (util-linux or busybox); without it the action fails with
	// IssueGuardUnavailable rather than run unguarded. The lock file lives
	// in TMPDIR/muster-guard.UID, a mode-700 directory of the user.
	Guard string
	// GuardWait is how long an action waits for Guard's lock, rounded up
	// to whole seconds: zero means DefaultGuardWait (30s), and a negative
	// value fails at once when the lock is held.
	GuardWait time.Duration
	// Stream, when set, returns writers that receive the target's stdout
	// and stderr live. It is called once per target.
	Stream func(t *muster.Target) (stdout, stderr io.Writer)
}

// Runner runs actions over one transport per target transport name.
type Runner struct {
	// Transports maps a target's Transport ("ssh", "local") to its adapter.
	Transports map[string]muster.Transport

	cache taskCache
}

func (r *Runner) transport(t *muster.Target) (muster.Transport, error) {
	tr, ok := r.Transports[t.Transport]
	if !ok {
		names := make([]string, 0, len(r.Transports))
		for k := range r.Transports {
			names = append(names, k)
		}
		sort.Strings(names)
		return nil, muster.Errorf(muster.KindConnect, "target %s uses transport %q, which muster does not support (supported: %s)",
			t.Name, t.Transport, strings.Join(names, ", "))
	}
	return tr, nil
}

// output collects a command's stdout and stderr separately and interleaved
// in arrival order, as Bolt's merged_output.
type output struct {
	mu     sync.Mutex
	stdout bytes.Buffer
	stderr bytes.Buffer
	merged bytes.Buffer
}

type outputStream struct {
	o    *output
	own  *bytes.Buffer
	live io.Writer
}

func (s *outputStream) Write(p []byte) (int, error) {
	s.o.mu.Lock()
	s.own.Write(p)
	s.o.merged.Write(p)
	s.o.mu.Unlock()
	if s.live != nil {
		_, _ = s.live.Write(p) // live display must never fail the action
	}
	return len(p), nil
}

func (o *output) writers(liveOut, liveErr io.Writer) (io.Writer, io.Writer) {
	return &outputStream{o: o, own: &o.stdout, live: liveOut}, &outputStream{o: o, own: &o.stderr, live: liveErr}
}

func (o *output) value(exitCode int) map[string]any {
	o.mu.Lock()
	defer o.mu.Unlock()
	return map[string]any{
		"stdout":        o.stdout.String(),
		"stderr":        o.stderr.String(),
		"merged_output": o.merged.String(),
		"exit_code":     exitCode,
	}
}

// quote returns s quoted for a POSIX shell.
func quote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// envPrefix returns "env K='v' ... " for the command, sorted by name.
func envPrefix(env map[string]string) (string, error) {
	if len(env) == 0 {
		return "", nil
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		if !validEnvName(k) {
			return "", muster.Errorf(muster.KindInvalid, "invalid environment variable name %q: use letters, digits and _ and do not start with a digit", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("env")
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, quote(env[k]))
	}
	b.WriteString(" ")
	return b.String(), nil
}

func validEnvName(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, r := range k {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// configString returns the string at key in the target's transport config.
func configString(t *muster.Target, key string) string {
	if s, ok := t.TransportConfig()[key].(string); ok {
		return s
	}
	return ""
}

func failed(t *muster.Target, action, object string, err error) *muster.Result {
	return &muster.Result{Target: t.Name, Action: action, Object: object, Value: map[string]any{},
		Error: muster.AsError(err, muster.KindInternal)}
}

func nilWriters(t *muster.Target, opts Options) (io.Writer, io.Writer) {
	if opts.Stream == nil {
		return nil, nil
	}
	return opts.Stream(t)
}

// Release tells t's transport that this run is done with t, when the
// transport keeps per-target state (the SSH pool closes the connection).
// A target holding a task cache keeps its connection for Cleanup.
func (r *Runner) Release(t *muster.Target) {
	if r.cache.holds(t.Name) {
		return
	}
	if tr, ok := r.Transports[t.Transport].(interface{ Release(*muster.Target) }); ok {
		tr.Release(t)
	}
}
