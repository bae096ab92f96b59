package apply

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os/user"
	"regexp"
	"strings"
	"sync"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
)

// Applier applies manifests on targets with puppet apply, through an
// action runner's script action: one channel per apply carries the
// script, the manifest and (the first time on a target) the module path,
// and brings back Puppet's report. The module path is packed once and
// named by its content hash. With Keep, it stays unpacked on each target
// (in a private directory per run-as user, like the task cache) for the
// applies that follow, until Cleanup or Forget; without Keep it is
// unpacked beside the manifest and removed with it.
type Applier struct {
	Runner *action.Runner
	// Modules maps each module's name to its directory (task.Index's
	// Modules): the module path puppet apply sees on the target.
	Modules map[string]string
	// Keep caches the module path on targets between applies.
	Keep bool

	once      sync.Once
	bundle    *bundle
	bundleErr error

	mu    sync.Mutex
	token string
	cache map[string]*cacheEntry
}

type cacheEntry struct {
	mu      sync.Mutex // serialises the first upload to one target
	present bool
	target  *muster.Target
	opts    action.Options
	dir     string
}

// Options are one apply's options.
type Options struct {
	// Noop passes --noop: Puppet reports what it would change.
	Noop bool
	// Object names the manifest in results (its file, or "" for code).
	Object string
}

func (a *Applier) modules() (*bundle, error) {
	a.once.Do(func() { a.bundle, a.bundleErr = packModules(a.Modules) })
	return a.bundle, a.bundleErr
}

// Apply runs manifest on t with puppet apply and returns Bolt's
// ApplyResult (see Interpret). It never returns nil.
func (a *Applier) Apply(ctx context.Context, t *muster.Target, manifest string, o Options, opts action.Options) *muster.Result {
	b, err := a.modules()
	if err != nil {
		return failed(t, o.Object, err)
	}
	if opts.Stream != nil {
		// The report travels on stdout: show only Puppet's log live.
		stream := opts.Stream
		opts.Stream = func(t *muster.Target) (io.Writer, io.Writer) {
			_, stderr := stream(t)
			return nil, stderr
		}
	}
	var e *cacheEntry
	if a.Keep {
		e = a.entry(t, b, opts)
		e.mu.Lock()
		defer e.mu.Unlock()
	}
	missing := "muster-apply-cache-missing-" + a.runToken()
	for attempt := 0; ; attempt++ {
		send := e == nil || !e.present
		dir := ""
		if e != nil {
			dir = e.dir
		}
		script := applyScript(manifest, b, dir, send, o.Noop, missing)
		res := a.Runner.Script(ctx, t, "muster-apply.sh", script, nil, opts)
		stderr, _ := res.Value["stderr"].(string)
		if res.Error != nil && res.Error.Kind != muster.KindCommand {
			return failed(t, o.Object, res.Error)
		}
		code := exitCode(res.Value["exit_code"])
		if e != nil && !send && code == 97 && strings.Contains(stderr, missing) && attempt == 0 {
			e.present = false // the cache was removed on the target: send again
			continue
		}
		if msg, ok := cut(stderr, setupMarker); ok {
			return failed(t, o.Object, muster.Errorf(muster.KindFile, "apply on %s: %s", t.Name, msg).WithCode("TMPDIR_ERROR"))
		}
		if e != nil && code != 127 {
			e.present = true
		}
		stdout, _ := res.Value["stdout"].(string)
		return Interpret(t.Name, o.Object, Outcome{ExitCode: code, Report: stdout, Log: stderr})
	}
}

func failed(t *muster.Target, object string, err error) *muster.Result {
	return &muster.Result{Target: t.Name, Action: "apply", Object: object, Value: map[string]any{},
		Error: muster.AsError(err, muster.KindInternal)}
}

func exitCode(v any) int {
	switch x := v.(type) {
	case int:
		return x
	case int64:
		return int(x)
	case float64:
		return int(x)
	}
	return -1
}

func cut(s, marker string) (string, bool) {
	i := strings.Index(s, marker)
	if i < 0 {
		return "", false
	}
	msg := s[i+len(marker):]
	if nl := strings.IndexByte(msg, '\n'); nl >= 0 {
		msg = msg[:nl]
	}
	return strings.TrimSpace(msg), true
}

// setupMarker starts the apply script's own setup errors on stderr.
const setupMarker = "muster-apply-setup-error:"

func (a *Applier) runToken() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.token == "" {
		var r [8]byte
		_, _ = rand.Read(r[:]) // crypto/rand.Read never fails on Linux
		a.token = hex.EncodeToString(r[:])
	}
	return a.token
}

func (a *Applier) entry(t *muster.Target, b *bundle, opts action.Options) *cacheEntry {
	tok := a.runToken()
	u := effectiveUser(t, opts)
	key := t.Name + "\x00" + u + "\x00" + b.hash
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cache == nil {
		a.cache = map[string]*cacheEntry{}
	}
	e, ok := a.cache[key]
	if !ok {
		e = &cacheEntry{target: t, opts: opts, dir: tmpdir(t, opts) + "/muster-apply." + tok + "." + safeName(u)}
		e.opts.Guard = "" // removing the cache is not the guarded work
		e.opts.Stream = nil
		a.cache[key] = e
	}
	return e
}

// Cleanup removes the module caches this applier left on targets: one
// channel per target and user.
func (a *Applier) Cleanup(ctx context.Context) {
	a.removeCaches(ctx, func(string) bool { return true })
}

// Forget removes the module caches this applier left on t.
func (a *Applier) Forget(ctx context.Context, t *muster.Target) {
	a.removeCaches(ctx, func(name string) bool { return name == t.Name })
}

func (a *Applier) removeCaches(ctx context.Context, match func(string) bool) {
	a.mu.Lock()
	var todo []*cacheEntry
	seen := map[string]bool{}
	for k, e := range a.cache {
		if !match(e.target.Name) {
			continue
		}
		delete(a.cache, k)
		if e.present && !seen[e.target.Name+"\x00"+e.dir] {
			seen[e.target.Name+"\x00"+e.dir] = true
			todo = append(todo, e)
		}
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range todo {
		wg.Add(1)
		go func(e *cacheEntry) {
			defer wg.Done()
			// Best effort: a target that went away keeps a private, mode-700 directory.
			_ = a.Runner.Command(ctx, e.target, "rm -rf "+shq(e.dir), e.opts)
		}(e)
	}
	wg.Wait()
}

// applyScript is the program the script action runs. Its file carries,
// after the shell text, the manifest and (when send) the module archive;
// the shell reads them from its own file with tail -c, so the shell never
// parses them. The module path goes into dir/<hash> (cached) or beside the
// script (dir ""). Puppet's output goes to stderr; stdout carries only the
// report, and the exit status is Puppet's.
func applyScript(manifest string, b *bundle, dir string, send, noop bool, missing string) []byte {
	var payload []byte
	payload = append(payload, manifest...)
	if send {
		payload = append(payload, b.data...)
	}
	var s strings.Builder
	s.WriteString("#!/bin/sh\n# muster apply: puppet apply with the manifest and modules below\n")
	s.WriteString("umask 077\nself=$0\nd=$(dirname \"$self\")\n")
	s.WriteString("PATH=/opt/puppetlabs/bin:$PATH:/usr/local/bin\nexport PATH\n")
	fmt.Fprintf(&s, "command -v puppet >/dev/null 2>&1 || { echo \"%s on PATH ($PATH)\" >&2; exit 127; }\n", missingMarker)
	fmt.Fprintf(&s, "tail -c %d \"$self\" | head -c %d >\"$d/site.pp\" || { echo \"%s cannot write the manifest into $d\" >&2; exit 1; }\n",
		len(payload), len(manifest), setupMarker)
	if dir == "" {
		s.WriteString("i=\"$d/modules\"\nmkdir \"$i\" || exit 1\n")
		fmt.Fprintf(&s, "tail -c %d \"$self\" | tar -xof - -C \"$i\" && [ -f \"$i\"/%s ] || { echo \"%s cannot unpack the modules into $i (is tar installed?)\" >&2; exit 1; }\n",
			len(b.data), bundleComplete, setupMarker)
	} else {
		fmt.Fprintf(&s, "c=%s\ni=\"$c\"/%s\n", shq(dir), b.hash)
		if send {
			// Several targets may share one machine: mkdir and mv may lose a
			// race, so only the outcome is checked, as for the task cache.
			s.WriteString("mkdir -m 700 \"$c\" 2>/dev/null\n")
			fmt.Fprintf(&s, "[ -d \"$c\" ] && [ -O \"$c\" ] && [ ! -L \"$c\" ] || { echo \"%s cannot create $c, or it belongs to another user\" >&2; exit 1; }\n", setupMarker)
			fmt.Fprintf(&s, "if [ ! -d \"$i\" ]; then\n  t=$(mktemp -d \"$c/.in.XXXXXXXX\") && tail -c %d \"$self\" | tar -xof - -C \"$t\" && [ -f \"$t\"/%s ] || { rm -rf \"$t\"; echo \"%s cannot unpack the modules into $c (is tar installed?)\" >&2; exit 1; }\n",
				len(b.data), bundleComplete, setupMarker)
			s.WriteString("  mv \"$t\" \"$i\" 2>/dev/null; rm -rf \"$t\"\nfi\n")
		} else {
			fmt.Fprintf(&s, "[ -d \"$i\" ] || { echo %s >&2; exit 97; }\n", missing)
		}
	}
	s.WriteString("set -- --detailed-exitcodes --color=false --modulepath \"$i\" --lastrunreport \"$d/report.yaml\"\n")
	if noop {
		s.WriteString("set -- \"$@\" --noop\n")
	}
	s.WriteString("puppet apply \"$@\" \"$d/site.pp\" 1>&2 </dev/null\nrc=$?\n")
	s.WriteString("[ -f \"$d/report.yaml\" ] && cat \"$d/report.yaml\"\nexit $rc\n")
	var out bytes.Buffer
	out.WriteString(s.String())
	out.Write(payload)
	return out.Bytes()
}

// effectiveUser is who an action on t runs as, as far as muster can tell:
// the run-as user, else the login user, else (local transport) this
// process's user. Each gets their own cache directory.
func effectiveUser(t *muster.Target, opts action.Options) string {
	u := opts.RunAs
	if u == "" {
		u, _ = t.TransportConfig()["run-as"].(string)
	}
	if u != "" && u != t.User {
		return u
	}
	if t.User != "" {
		return t.User
	}
	if t.Transport == "local" {
		if cur, err := user.Current(); err == nil {
			return cur.Username
		}
	}
	return ""
}

func tmpdir(t *muster.Target, opts action.Options) string {
	if opts.TmpDir != "" {
		return opts.TmpDir
	}
	if d, ok := t.TransportConfig()["tmpdir"].(string); ok && d != "" {
		return d
	}
	return "/tmp"
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// safeName turns a user name into a file name part.
func safeName(u string) string {
	if plainName.MatchString(u) {
		return u
	}
	return "x" + hex.EncodeToString([]byte(u))
}

// shq quotes s for a POSIX shell.
func shq(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
