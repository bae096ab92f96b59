package action

import (
	"bytes"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/muster-run/muster"
)

// interpreter returns the configured interpreter for the executable's
// extension (the "interpreters" transport config), or "".
func interpreter(t *muster.Target, file string) string {
	m, ok := t.TransportConfig()["interpreters"].(map[string]any)
	if !ok {
		return ""
	}
	ext := path.Ext(file)
	for _, k := range []string{ext, strings.TrimPrefix(ext, ".")} {
		switch v := m[k].(type) {
		case string:
			return quote(v)
		case []any:
			parts := make([]string, 0, len(v))
			for _, x := range v {
				parts = append(parts, quote(fmt.Sprint(x)))
			}
			return strings.Join(parts, " ")
		}
	}
	return ""
}

// taskProgram builds the shell program that (when send is set) unpacks the
// archive that follows the parameter lines on stdin into the cache, then
// runs the task with its input. The parameter lines are read with the
// shell's read builtin, which never consumes more than one line, and the
// archive with head -c, so nothing waits for the end of stdin; secrets stay
// off the disk.
func taskProgram(cacheDir, installDir string, p *payload, interp string, stdinInput, send bool, setup, missing string) program {
	var b strings.Builder
	// The parameters and the PT_ variables arrive on stdin, never on a
	// command line, where any user of the target could read them in ps.
	// A line cut short means the client went away: nothing runs.
	b.WriteString("umask 077\nIFS= read -r params && IFS= read -r n || exit 1\n")
	// A value marked "b" holds escapes for printf %b; one marked "p" is
	// plain and costs no extra process to decode.
	b.WriteString("while [ \"$n\" -gt 0 ]; do IFS= read -r k && IFS= read -r v || exit 1\n")
	b.WriteString("  case $v in b*) v=$(printf '%bx' \"${v#b}\"); v=${v%x};; *) v=${v#p};; esac\n")
	b.WriteString("  export \"$k=$v\"; n=$((n-1)); done\n")
	if send {
		// Several targets may share one machine (aliases, containers): mkdir
		// may lose a race, so only the result is checked.
		fmt.Fprintf(&b, "c=%s\nmkdir -m 700 \"$c\" 2>/dev/null\n", quote(cacheDir))
		fmt.Fprintf(&b, "[ -d \"$c\" ] && [ -O \"$c\" ] && [ ! -L \"$c\" ] || { echo \"%s cannot create $c, or it belongs to another user\" >&2; exit 1; }\n", setup)
		// Unpack into a private directory, then rename it into place; when a
		// sibling target on the same machine won the race, use its copy. An
		// archive cut short lacks its last entry and is never renamed.
		fmt.Fprintf(&b, "i=%s\nif [ -d \"$i\" ]; then head -c %d >/dev/null; else\n", quote(installDir), len(p.data))
		fmt.Fprintf(&b, "  t=$(mktemp -d \"$c/.in.XXXXXXXX\") && head -c %d | tar -xof - -C \"$t\" && [ -f \"$t\"/%s ] || { rm -rf \"$t\"; echo \"%s cannot unpack the task into $c (is tar installed?)\" >&2; exit 1; }\n",
			len(p.data), taskComplete, setup)
		b.WriteString("  mv \"$t\" \"$i\" 2>/dev/null; rm -rf \"$t\" \"$i/${t##*/}\"\nfi\n")
		fmt.Fprintf(&b, "[ -d \"$i\" ] || { echo \"%s cannot install the task into $i\" >&2; exit 1; }\n", setup)
	} else {
		fmt.Fprintf(&b, "i=%s\n[ -d \"$i\" ] || { echo %s >&2; exit 97; }\n", quote(installDir), missing)
	}
	prog := program{prelude: b.String(), work: strings.TrimSpace(interp + " \"$i\"/" + quote(p.exe))}
	if stdinInput {
		prog.feed = `printf '%s' "$params"`
	}
	return prog
}

// writeEnv writes env for taskScript's reader: a count, then name and value
// lines, each value escaped for printf %b so it may hold newlines.
func writeEnv(w *bytes.Buffer, env map[string]string) error {
	keys := make([]string, 0, len(env))
	for k := range env {
		if !validEnvName(k) {
			return muster.Errorf(muster.KindInvalid, "invalid environment variable name %q", k)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(w, "%d\n", len(keys))
	for _, k := range keys {
		v := strings.ReplaceAll(env[k], "\x00", "")
		if strings.ContainsAny(v, "\\\n") {
			v = "b" + strings.NewReplacer(`\`, `\\`, "\n", `\0012`).Replace(v)
		} else {
			v = "p" + v
		}
		fmt.Fprintf(w, "%s\n%s\n", k, v)
	}
	return nil
}
