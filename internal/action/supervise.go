package action

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

// Every action runs on the target as one shell program with this shape
// (see supervised):
//
//  1. The prelude reads the action's payload (a script, a task archive,
//     an upload) from stdin. Every part is delimited (a line read by the
//     read builtin, or exactly N bytes read by head -c N), because the
//     client keeps stdin open, sending nothing more, until the run is over:
//     EOF on stdin means only "the client is gone".
//  2. With a guard, the program takes an exclusive flock on a lock file in
//     a private per-user directory, waiting for it at most GuardWait.
//  3. The work runs under setsid, in its own session and process group,
//     with /dev/null (or its feed) as stdin and without the lock's fd.
//  4. A watcher, a subshell that ignores TERM, HUP and INT (so that the
//     transports' group signals leave it be), reads stdin until EOF. If the program has
//     not dismissed it by then, the client is gone (killed, disconnected)
//     or cancelled: it sends TERM to the work's process group, then KILL
//     after stopGrace seconds.
//  5. The program waits for the work, dismisses the watcher (SIGUSR1)
//     unless it was cancelled, and with a guard holds the lock until the
//     work's whole process group is gone.
//
// SIGTERM, SIGHUP or SIGINT to the program (ctx cancellation sends SIGTERM
// over SSH) are passed on to the work's process group, followed by KILL
// after stopGrace seconds: a cancelled run ends even when its work ignores
// TERM and the end of its channel's input has not arrived yet.

// stopGrace is how many seconds the work's process group has between TERM
// and KILL once its client is gone. It is shorter than the grace the
// transports give the program itself, so the watcher's KILL comes first.
const stopGrace = 3

// guardBusyExit is the exit status of a program that could not take its
// guard's lock, or found no way to lock.
const guardBusyExit = 75

// Issue codes of a run refused by its guard (kind muster.KindNotRun).
const (
	// IssueGuardBusy: another run with the same guard still held the lock
	// when Options.GuardWait ran out.
	IssueGuardBusy = "GUARD_BUSY"
	// IssueGuardUnavailable: the target cannot lock (no flock, or the
	// private lock directory is not usable).
	IssueGuardUnavailable = "GUARD_UNAVAILABLE"
)

// program is one action's shell program before supervision.
type program struct {
	// prelude runs first in the supervising shell: it reads payload from
	// stdin (delimited, never to EOF) and prepares the work.
	prelude string
	// work is one simple command (no leading assignments), evaluated by
	// the supervising shell and started under setsid.
	work string
	// feed, when set, is a command whose output becomes the work's stdin
	// (the work gets /dev/null otherwise).
	feed string
	// payload is sent on stdin for the prelude.
	payload []byte
}

// watcherScript runs in a subshell of the program with the channel as
// stdin and the work's pid as $1. See the overview above.
var watcherScript = `trap '' TERM HUP INT
while IFS= read -r x; do :; done
trap '' USR1
w=$1
k() { kill "$1" -"$w" 2>/dev/null || kill "$1" "$w" 2>/dev/null; }
k -TERM || exit 0
n=0
while [ "$n" -lt ` + strconv.Itoa(stopGrace) + ` ] && k -0; do sleep 1; n=$((n+1)); done
k -KILL
`

// supervised returns the whole command line for p: `exec sh -c '...'`.
// marker prefixes the guard's messages on stderr (see guardFilter).
func supervised(p program, g *guardSpec, marker string) string {
	var b strings.Builder
	b.WriteString(p.prelude)
	b.WriteString("exec 3<&0 </dev/null\n")
	if g != nil {
		g.write(&b, marker)
	}
	// The supervisor's names start with __m, out of the way of the prelude's
	// variables and of exported environment variables.
	b.WriteString(`__mw= __mc=
__mk() { kill "$1" -"$__mw" 2>/dev/null || kill "$1" "$__mw" 2>/dev/null; }
trap '__mc=1; [ -n "$__mw" ] && { __mk -TERM; ( sleep ` + strconv.Itoa(stopGrace) + `; __mk -KILL ) </dev/null >/dev/null 2>&1 & }' TERM HUP INT
__mS=setsid; command -v setsid >/dev/null 2>&1 || __mS=
`)
	if p.feed != "" {
		fmt.Fprintf(&b, "%s | $__mS %s 3<&- 9>&- &\n", p.feed, p.work)
	} else {
		fmt.Fprintf(&b, "$__mS %s </dev/null 3<&- 9>&- &\n", p.work)
	}
	b.WriteString("__mw=$!\n")
	// The watcher is a subshell of the program (a fork, no exec): it ignores
	// the signals the transports send the program's process group, and the
	// program dismisses it with USR1 once the work has ended.
	fmt.Fprintf(&b, "(set -- \"$__mw\"\n%s) <&3 >/dev/null 2>&1 9>&- &\n", watcherScript)
	// A trapped signal interrupts wait: wait again until the work is reaped.
	fmt.Fprintf(&b, `__mm=$!
exec 3<&-
wait "$__mw"; __ms=$?
while [ "$__ms" -gt 128 ] && kill -0 "$__mw" 2>/dev/null; do wait "$__mw"; __ms=$?; done
if [ -n "$__mc" ]; then
  __mk -TERM && { __mn=0; while [ "$__mn" -lt %d ] && __mk -0; do sleep 1; __mn=$((__mn+1)); done; __mk -KILL; }
else
  kill -USR1 "$__mm" 2>/dev/null
fi
`, stopGrace)
	if g != nil {
		// The lock is held until nothing of the work is left.
		b.WriteString(`while kill -0 -"$__mw" 2>/dev/null; do sleep 1; done` + "\n")
	}
	b.WriteString(`exit "$__ms"` + "\n")
	return "exec sh -c " + quote(b.String())
}

// guardSpec is a per-node lock the program takes before its work.
type guardSpec struct {
	name string
	base string // the directory holding the private lock directory
	wait time.Duration
	// user is who the program runs as, when muster knows it: it names the
	// private lock directory without running id(1); "" asks id -u.
	user string
}

func newGuard(opts Options, base, user string) *guardSpec {
	if opts.Guard == "" {
		return nil
	}
	return &guardSpec{name: opts.Guard, base: base, wait: opts.GuardWait, user: user}
}

// lockName returns the guard's lock file name: a readable, sanitised
// prefix of the guard and a hash of all of it.
func (g *guardSpec) lockName() string {
	sum := sha256.Sum256([]byte(g.name))
	var clean strings.Builder
	for _, r := range g.name {
		if clean.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			clean.WriteRune(r)
		} else {
			clean.WriteByte('_')
		}
	}
	return clean.String() + "." + hex.EncodeToString(sum[:12]) + ".lock"
}

// write adds the locking lines: the private directory base/muster-guard.UID
// (mode 700, owned by the user, not a link), the lock file in it, opened
// as fd 9, and flock -n polled once a second for at most g.wait. The
// holder's pid is written into the lock file for the busy message. While
// it waits (only when the lock is taken), a subshell watches stdin: a
// client gone by then (USR2) ends the program before its work ever starts.
func (g *guardSpec) write(b *strings.Builder, marker string) {
	secs := int(g.waited() / time.Second)
	// The directory is named by the user when muster knows it, so the
	// common path runs no id(1); -O below checks the owner either way. Only
	// the user can have made a directory the user owns, and this program
	// makes it mode 700, so its mode needs no chmod on every run.
	who := "$(id -u)"
	if g.user != "" {
		who = quote(targetDirName(g.user))
	}
	fmt.Fprintf(b, "__mgd=%s/muster-guard.%s\n", quote(g.base), who)
	fmt.Fprintf(b, `[ -d "$__mgd" ] || mkdir -m 700 "$__mgd" 2>/dev/null
[ -d "$__mgd" ] && [ ! -L "$__mgd" ] && [ -O "$__mgd" ] || { echo "%[1]s baddir $__mgd" >&2; exit %[2]d; }
command -v flock >/dev/null 2>&1 || { echo "%[1]s noflock" >&2; exit %[2]d; }
__mf="$__mgd"/%[3]s
exec 9>>"$__mf" || { echo "%[1]s baddir $__mf" >&2; exit %[2]d; }
if ! flock -n 9; then
  __mg=
  trap '__mg=1' USR2
  ( trap '' HUP INT USR2; while IFS= read -r x; do :; done; kill -USR2 $$ ) <&3 >/dev/null 2>&1 9>&- &
  __mpw=$!
  __mn=0
  until flock -n 9; do
    [ -n "$__mg" ] && exit 1
    [ "$__mn" -ge %[4]d ] && { __mp=$(head -c 32 "$__mf" 2>/dev/null); echo "%[1]s busy ${__mp:-?} $__mf" >&2; exit %[2]d; }
    sleep 1; __mn=$((__mn+1))
  done
  kill "$__mpw" 2>/dev/null
  [ -n "$__mg" ] && exit 1
fi
echo $$ >"$__mf"
`, marker, guardBusyExit, quote(g.lockName()), secs)
}

// DefaultGuardWait is how long an action waits for its guard's lock when
// Options.GuardWait is zero.
const DefaultGuardWait = 30 * time.Second

// waited is how long the program waits for the lock: GuardWait (zero for
// DefaultGuardWait, negative for not at all) rounded up to whole seconds,
// as it polls once a second.
func (g *guardSpec) waited() time.Duration {
	w := g.wait
	if w == 0 {
		w = DefaultGuardWait
	}
	return (max(w, 0) + time.Second - 1) / time.Second * time.Second
}

// guardError turns the program's guard message into the run's error.
func (g *guardSpec) guardError(t *muster.Target, msg string) *muster.Error {
	word, rest, _ := strings.Cut(msg, " ")
	var e *muster.Error
	switch word {
	case "busy":
		pid, file, _ := strings.Cut(rest, " ")
		holder := ""
		if pid != "?" && pid != "" {
			holder = ", held by process " + pid
		}
		e = muster.Errorf(muster.KindNotRun, "another muster run still holds the lock %q on %s (%s%s); it did not end within %s",
			g.name, t.Name, file, holder, g.waited()).WithCode(IssueGuardBusy).WithDetail("lock_file", file)
	case "noflock":
		e = muster.Errorf(muster.KindNotRun, "cannot take the lock %q on %s: flock is not installed there (util-linux or busybox provides it)",
			g.name, t.Name).WithCode(IssueGuardUnavailable)
	default:
		e = muster.Errorf(muster.KindNotRun, "cannot take the lock %q on %s: %s is not a private directory of this user",
			g.name, t.Name, strings.TrimSpace(rest)).WithCode(IssueGuardUnavailable)
	}
	return e.WithDetail("started", false).WithDetail("guard", g.name)
}

// guardFilter sits on stderr and takes out the lines that start with the
// guard's marker, keeping the first one's text.
type guardFilter struct {
	w      io.Writer
	marker []byte
	mu     sync.Mutex
	line   []byte // the start of the current line, while it may be the marker
	inLine bool   // passing the rest of a line that is not the marker
	msg    string
	found  bool
}

func (f *guardFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		if f.inLine {
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				f.forward(p)
				return n, nil
			}
			f.forward(p[:i+1])
			p = p[i+1:]
			f.inLine = false
			continue
		}
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i+1]
		}
		f.line = append(f.line, chunk...)
		p = p[len(chunk):]
		k := min(len(f.line), len(f.marker))
		switch {
		case !bytes.Equal(f.line[:k], f.marker[:k]):
			f.forward(f.line)
			f.inLine = i < 0
			f.line = f.line[:0]
		case i >= 0 && len(f.line) >= len(f.marker):
			if !f.found {
				f.found, f.msg = true, strings.TrimSpace(string(f.line[len(f.marker):]))
			}
			f.line = f.line[:0]
		case i >= 0:
			f.forward(f.line) // a short line that is a prefix of the marker
			f.line = f.line[:0]
		}
	}
	return n, nil
}

// forward passes p on; a failing writer never fails the action.
func (f *guardFilter) forward(p []byte) {
	if f.w != nil && len(p) > 0 {
		_, _ = f.w.Write(p)
	}
}

// end passes on a partial line held back, and reports the guard message.
func (f *guardFilter) end() (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forward(f.line)
	f.line = nil
	return f.msg, f.found
}

// heldInput is a command's stdin: the payload, then nothing until Close,
// then EOF. Holding the channel's input open is what lets the program tell
// a finished client from a vanished one.
type heldInput struct {
	r    *bytes.Reader
	done chan struct{}
	once sync.Once
}

func newHeldInput(payload []byte) *heldInput {
	return &heldInput{r: bytes.NewReader(payload), done: make(chan struct{})}
}

func (h *heldInput) Read(p []byte) (int, error) {
	if h.r.Len() > 0 {
		return h.r.Read(p)
	}
	<-h.done
	return 0, io.EOF
}

// Close ends the input: the remote program sees EOF.
func (h *heldInput) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

// run executes p on t, supervised (see supervised), escalating with sudo
// when run-as asks for it, and returns the exit code.
func (r *Runner) run(ctx context.Context, t *muster.Target, p program, stdout, stderr io.Writer, opts Options) (int, error) {
	tr, err := r.transport(t)
	if err != nil {
		return -1, err
	}
	g := newGuard(opts, r.tmpdir(t, opts), effectiveUser(t, opts))
	marker := "muster-guard-" + randomToken() + ":"
	line := supervised(p, g, marker)
	in := newHeldInput(p.payload)
	defer in.Close()
	filter := &guardFilter{w: stderr, marker: []byte(marker)}
	var code int
	if esc := newEscalation(t, opts); esc == nil {
		code, err = tr.Exec(ctx, t, &muster.Command{Line: line, Stdin: in, Stdout: stdout, Stderr: filter})
		_ = in.Close()
	} else {
		code, err = esc.exec(ctx, tr, t, line, in, stdout, filter)
	}
	msg, busy := filter.end()
	if err == nil && busy && code == guardBusyExit && g != nil {
		return code, g.guardError(t, msg)
	}
	return code, err
}
