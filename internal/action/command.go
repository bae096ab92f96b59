package action

import (
	"context"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/muster-run/muster"
)

// Command runs line on t with the target's login shell (sh under run-as,
// as sudo gives it), in one channel.
func (r *Runner) Command(ctx context.Context, t *muster.Target, line string, opts Options) *muster.Result {
	prefix, err := envPrefix(opts.Env)
	if err != nil {
		return failed(t, "command", line, err)
	}
	work := commandShell(t, opts) + " -c " + quote(line)
	if prefix != "" {
		work = prefix + "sh -c " + quote(line)
	}
	return r.execResult(ctx, t, "command", line, program{work: work}, opts, "")
}

// commandShell is the shell a command line is handed to: the login shell
// over SSH ($SHELL, as sshd sets it), sh under sudo (as before), and
// /bin/sh on the local transport.
func commandShell(t *muster.Target, opts Options) string {
	switch {
	case runAsUser(t, opts) != "":
		return "sh"
	case t.Transport == "local":
		return "/bin/sh"
	}
	return `"${SHELL:-/bin/sh}"`
}

// Script uploads content as a script named after scriptPath into a private
// temporary directory, runs it with args, and removes the directory: all in
// one channel, with the script streamed over the command's stdin.
func (r *Runner) Script(ctx context.Context, t *muster.Target, scriptPath string, content []byte, args []string, opts Options) *muster.Result {
	prefix, err := envPrefix(opts.Env)
	if err != nil {
		return failed(t, "script", scriptPath, err)
	}
	name := path.Base(strings.ReplaceAll(scriptPath, "\\", "/"))
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = quote(a)
	}
	setup := setupMarker()
	file := `"$d"/` + quote(name)
	prelude := privateDir(r.tmpdir(t, opts), setup) +
		fmt.Sprintf("head -c %d >%s && [ $(($(wc -c <%s))) -eq %d ] && chmod 700 %s", len(content), file, file, len(content), file) +
		` || { echo "` + setup + ` cannot write the script into $d" >&2; exit 1; }` + "\n"
	work := strings.TrimSpace(prefix + file + " " + strings.Join(quoted, " "))
	return r.execResult(ctx, t, "script", scriptPath, program{prelude: prelude, work: work, payload: content}, opts, setup)
}

func (r *Runner) tmpdir(t *muster.Target, opts Options) string {
	if opts.TmpDir != "" {
		return opts.TmpDir
	}
	if d := configString(t, "tmpdir"); d != "" {
		return d
	}
	return "/tmp"
}

// privateDir returns shell lines that create a mode-700 directory $d under
// base and remove it however the script ends. A failure is reported on
// stderr after the setup marker.
func privateDir(base, setup string) string {
	return "umask 077\n" +
		`d=$(mktemp -d ` + quote(base+"/muster.XXXXXXXX") + `) || { echo "` + setup + ` cannot create a private directory in ` + strings.ReplaceAll(base, `"`, ``) + `" >&2; exit 1; }` + "\n" +
		`trap 'rm -rf "$d"' EXIT` + "\n" +
		`trap 'exit 143' TERM HUP INT` + "\n"
}

// setupMarker returns a token that prefixes muster's own setup errors on
// stderr, so that they can be told apart from the script's failures.
func setupMarker() string { return "muster-setup-error-" + randomToken() + ":" }

// execResult runs line and shapes a command-style result: stdout, stderr,
// merged_output and exit_code, with a command-error for a non-zero exit.
func (r *Runner) execResult(ctx context.Context, t *muster.Target, action, object string, p program, opts Options, setup string) *muster.Result {
	var out output
	var liveOut, liveErr = nilWriters(t, opts)
	stdout, stderr := out.writers(liveOut, liveErr)
	code, err := r.run(ctx, t, p, stdout, stderr, opts)
	flush(liveOut)
	flush(liveErr)
	res := &muster.Result{Target: t.Name, Action: action, Object: object, Value: out.value(code)}
	if err != nil {
		res.Error = muster.AsError(err, muster.KindInternal)
		return res
	}
	if setup != "" {
		if msg, ok := setupFailure(res.Value["stderr"].(string), setup); ok {
			res.Error = muster.Errorf(muster.KindFile, "%s on %s: %s", action, t.Name, msg).WithCode("TMPDIR_ERROR")
			return res
		}
	}
	if code != 0 {
		msg := fmt.Sprintf("The command failed with exit code %d", code)
		if code == 126 && action == "script" {
			msg += " (is the temporary directory mounted noexec? set tmpdir to another directory)"
		}
		res.Error = muster.Errorf(muster.KindCommand, "%s", msg).WithCode("COMMAND_ERROR").WithDetail("exit_code", code)
	}
	return res
}

func setupFailure(stderr, marker string) (string, bool) {
	i := strings.Index(stderr, marker)
	if i < 0 {
		return "", false
	}
	msg := stderr[i+len(marker):]
	if nl := strings.IndexByte(msg, '\n'); nl >= 0 {
		msg = msg[:nl]
	}
	return strings.TrimSpace(msg), true
}

// flush ends a live writer's last partial line, if it keeps one.
func flush(w io.Writer) {
	if f, ok := w.(interface{ Flush() }); ok {
		f.Flush()
	}
}
