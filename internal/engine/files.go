package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/target"
	"github.com/muster-run/muster/internal/task"
)

// FileRef is what a file reference names: a script to run, or a file or
// directory to upload.
type FileRef int

// The kinds of file reference.
const (
	ScriptRef FileRef = iota
	UploadRef
)

// FindFile resolves a script or file reference of a plan (a script or
// upload step, run_script, upload_file) as Bolt documents them, taking the
// first that exists of:
//
//   - <module>/scripts/<path>: <module's directory>/scripts/<path>;
//   - <module>/files/<path>: <module's directory>/files/<path>;
//   - <module>/<path>: <module's directory>/files/<path>;
//   - a path relative to the project directory;
//   - an absolute path.
//
// modules maps module names to their directories (the module path's first
// wins). A script must be a regular file; an upload may be a directory.
// The error, of kind muster/invalid-input, lists every place tried.
func FindFile(ref string, kind FileRef, modules map[string]string, projectDir string) (string, error) {
	what := "file"
	if kind == ScriptRef {
		what = "script"
	}
	if strings.TrimSpace(ref) == "" {
		return "", muster.Errorf(muster.KindInvalid, "no %s given: write <module>/scripts/<path>, <module>/files/<path>, a path relative to the project or an absolute path", what)
	}
	tried, note := Candidates(ref, modules, projectDir)
	var notFile []string
	for _, c := range tried {
		fi, err := os.Stat(c)
		if err != nil {
			continue
		}
		if kind == ScriptRef && !fi.Mode().IsRegular() {
			notFile = append(notFile, c)
			continue
		}
		return c, nil
	}
	msg := fmt.Sprintf("No such file or directory: %s %q", what, ref)
	if len(tried) > 0 {
		msg += "; tried " + strings.Join(tried, ", ")
	}
	if len(notFile) > 0 {
		msg += fmt.Sprintf(" (%s is not a regular file)", strings.Join(notFile, ", "))
	}
	if note != "" {
		msg += " (" + note + ")"
	}
	return "", muster.Errorf(muster.KindInvalid, "%s", msg).WithDetail("tried", tried)
}

// Candidates lists the paths that FindFile tries for ref, in order, and a
// note when ref looks like a module reference to a module that is not on
// the module path.
func Candidates(ref string, modules map[string]string, projectDir string) (tried []string, note string) {
	if strings.TrimSpace(ref) == "" {
		return nil, ""
	}
	if filepath.IsAbs(ref) {
		return []string{filepath.Clean(ref)}, ""
	}
	add := func(p string) {
		for _, t := range tried {
			if t == p {
				return
			}
		}
		tried = append(tried, p)
	}
	if mod, rest, ok := strings.Cut(ref, "/"); ok && mod != "" && rest != "" {
		if dir, found := modules[mod]; found {
			if sub, p, ok := strings.Cut(rest, "/"); ok && p != "" {
				switch sub {
				case "scripts":
					add(filepath.Join(dir, "scripts", p))
				case "files":
					add(filepath.Join(dir, "files", p))
				}
			}
			add(filepath.Join(dir, "files", rest))
		} else if !strings.HasPrefix(mod, ".") {
			note = fmt.Sprintf("no module %q on the module path", mod)
		}
	}
	if projectDir != "" {
		add(filepath.Join(projectDir, ref))
	} else if abs, err := filepath.Abs(ref); err == nil {
		add(abs)
	}
	return tried, note
}

// RubyWarning is the warning to give before tk runs on t when the
// implementation chosen for t is a Ruby one and t runs Ruby with the
// system's ruby because Puppet's bundled Ruby is missing (see
// target.ApplyLocalDefaults); "" otherwise.
func RubyWarning(tk *task.Task, t *muster.Target) string {
	w, fallback := target.RubyFallback(t)
	if !fallback {
		return ""
	}
	im, err := tk.Select(t.Name, t.Features)
	if err != nil || !strings.EqualFold(filepath.Ext(im.Name), ".rb") {
		return ""
	}
	return w
}
