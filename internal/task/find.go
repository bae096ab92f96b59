package task

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// KindNoImplementation is the error kind of a task that has no
// implementation suitable for a target.
const KindNoImplementation = "muster/no-implementation"

// Task is one task found on the module path.
type Task struct {
	// Name is "mod::name", or "mod" for init.
	Name   string
	Module string
	// Dir is the module's directory.
	Dir string
	// MetadataFile is the path of <name>.json, "" when there is none.
	MetadataFile string
	// Metadata is never nil: a task without a metadata file gets an empty
	// one (no parameters key, so any parameters are accepted).
	Metadata *Metadata
	// Warnings are the metadata file's warnings (unknown fields).
	Warnings []string
	// Executables maps each executable's file name ("init.sh") to its path.
	Executables map[string]string
	// Err is set when the task is unusable (bad metadata, several
	// executables without implementations, missing implementation file).
	// Get returns it; List still lists the task.
	Err error
}

// Description returns the metadata description.
func (t *Task) Description() string { return t.Metadata.Description }

// Index is the set of tasks on a module path.
type Index struct {
	// ModulePath is the path searched.
	ModulePath []string
	// Modules maps each module name to its directory (the first on the
	// path wins).
	Modules map[string]string
	tasks   map[string]*Task
}

// Find discovers the modules and tasks on modulepath. Entries that do not
// exist are skipped; a problem with one task is recorded in its Err rather
// than failing the whole index.
func Find(modulepath []string) (*Index, error) {
	idx := &Index{ModulePath: modulepath, Modules: map[string]string{}, tasks: map[string]*Task{}}
	err := WalkModules(modulepath, func(mod, dir string) error {
		idx.Modules[mod] = dir
		return idx.loadModule(mod, dir)
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

// WalkModules calls fn with the name and directory of each module on
// modulepath, in path order: each subdirectory of a path entry whose name
// is a valid module name, the first of a name on the path winning. Entries
// that do not exist are skipped. An error of fn stops the walk and is
// returned as it is.
func WalkModules(modulepath []string, fn func(name, dir string) error) error {
	seen := map[string]bool{}
	for _, root := range modulepath {
		entries, err := os.ReadDir(root)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("reading module path entry %s: %w", root, err)
		}
		for _, e := range entries {
			mod := e.Name()
			dir := filepath.Join(root, mod)
			if !paramName.MatchString(mod) || seen[mod] || !isDir(dir) {
				continue
			}
			seen[mod] = true
			if err := fn(mod, dir); err != nil {
				return err
			}
		}
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func (idx *Index) loadModule(mod, dir string) error {
	tdir := filepath.Join(dir, "tasks")
	entries, err := os.ReadDir(tdir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) || err != nil && !isDir(tdir) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", tdir, err)
	}
	byName := map[string]*Task{}
	var order []string
	for _, e := range entries {
		file := e.Name()
		if e.IsDir() || strings.HasPrefix(file, ".") || strings.HasSuffix(file, "~") {
			continue
		}
		base, ext := file, ""
		if i := strings.LastIndexByte(file, '.'); i > 0 {
			base, ext = file[:i], file[i+1:]
		}
		if ext == "md" || !paramName.MatchString(base) {
			continue
		}
		name := mod + "::" + base
		if base == "init" {
			name = mod
		}
		t := byName[name]
		if t == nil {
			t = &Task{Name: name, Module: mod, Dir: dir, Executables: map[string]string{}}
			byName[name] = t
			order = append(order, name)
		}
		if ext == "json" {
			t.MetadataFile = filepath.Join(tdir, file)
		} else {
			t.Executables[file] = filepath.Join(tdir, file)
		}
	}
	for _, name := range order {
		t := byName[name]
		t.load(tdir)
		if len(t.Executables) == 0 && t.Err == nil && len(t.Metadata.Implementations) == 0 {
			continue // a metadata file alone is not a task
		}
		idx.tasks[name] = t
	}
	return nil
}

// load reads the metadata and checks the executables.
func (t *Task) load(tdir string) {
	t.Metadata = &Metadata{PuppetTaskVersion: 1}
	if t.MetadataFile != "" {
		data, err := os.ReadFile(t.MetadataFile)
		if err != nil {
			t.Err = fmt.Errorf("task %s: %w", t.Name, err)
			return
		}
		md, warns, err := ParseMetadata(t.MetadataFile, data)
		if err != nil {
			t.Err = fmt.Errorf("task %s: %w", t.Name, err)
			return
		}
		t.Metadata, t.Warnings = md, warns
	}
	if impls := t.Metadata.Implementations; len(impls) > 0 {
		for _, im := range impls {
			p := filepath.Join(tdir, im.Name)
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				t.Err = fmt.Errorf("task %s: implementation %q not found in %s", t.Name, im.Name, tdir)
				return
			}
			t.Executables[im.Name] = p
		}
		return
	}
	if len(t.Executables) > 1 {
		files := slices.Sorted(maps.Keys(t.Executables))
		t.Err = fmt.Errorf("task %s has several executables (%s) but its metadata lists no implementations to choose between them",
			t.Name, strings.Join(files, ", "))
	}
}

// List returns the tasks sorted by name, without private ones unless
// includePrivate is set. Tasks with an Err are included.
func (idx *Index) List(includePrivate bool) []*Task {
	var out []*Task
	for _, t := range idx.tasks {
		if includePrivate || !t.Metadata.Private {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns the named task, or an error suggesting a near name.
func (idx *Index) Get(name string) (*Task, error) {
	if t, ok := idx.tasks[name]; ok {
		if t.Err != nil {
			return nil, muster.AsError(t.Err, muster.KindInvalid)
		}
		return t, nil
	}
	msg := fmt.Sprintf("could not find a task named %q", name)
	if best := puppet.Closest(name, slices.Sorted(maps.Keys(idx.tasks))); best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	} else {
		msg += "; run 'muster task show' for the list of tasks"
	}
	return nil, muster.Errorf(muster.KindInvalid, "%s", msg)
}

// Select chooses the implementation to run on a target with the given
// features: the first whose requirements are all among features. Without
// implementations the single executable is used; a .ps1 needs the
// powershell feature and anything else the shell feature. The returned
// Implementation has Path and the resolved InputMethod set.
func (t *Task) Select(target string, features []string) (*Implementation, error) {
	have := map[string]bool{}
	for _, f := range features {
		have[f] = true
	}
	var cands []Implementation
	if len(t.Metadata.Implementations) > 0 {
		cands = t.Metadata.Implementations
	} else {
		for file := range t.Executables {
			req := "shell"
			if strings.EqualFold(path.Ext(file), ".ps1") {
				req = "powershell"
			}
			cands = append(cands, Implementation{Name: file, Requirements: []string{req}})
		}
	}
	for _, c := range cands {
		ok := true
		for _, r := range c.Requirements {
			ok = ok && have[r]
		}
		if !ok {
			continue
		}
		im := c
		im.Requirements = append([]string(nil), c.Requirements...)
		im.Files = append([]string(nil), c.Files...)
		im.Path = t.Executables[c.Name]
		im.InputMethod = t.inputMethod(&c)
		return &im, nil
	}
	fs := "none"
	if len(features) > 0 {
		fs = strings.Join(features, ", ")
	}
	return nil, muster.Errorf(KindNoImplementation, "No suitable implementation of %s for target %s (features: %s)", t.Name, target, fs)
}

// inputMethod resolves the input method: the implementation's, else the
// task's, else powershell for .ps1 and both otherwise.
func (t *Task) inputMethod(im *Implementation) string {
	switch {
	case im.InputMethod != "":
		return im.InputMethod
	case t.Metadata.InputMethod != "":
		return t.Metadata.InputMethod
	case strings.EqualFold(path.Ext(im.Name), ".ps1"):
		return InputPowerShell
	}
	return InputBoth
}

// File is one file shipped with a task.
type File struct {
	// LocalPath is the file on the controller.
	LocalPath string
	// InstallPath is its slash-separated path relative to _installdir,
	// "<mod>/<files|tasks|lib|scripts>/<path>".
	InstallPath string
}

var mountDirs = map[string]bool{"files": true, "tasks": true, "lib": true, "scripts": true}

// ResolveFiles resolves the task-level "files" entries against the index's
// modules. An entry ending in "/" is a directory, shipped recursively.
func (t *Task) ResolveFiles(idx *Index) ([]File, error) {
	return t.resolve(idx, t.Metadata.Files)
}

// InstallFiles returns everything to upload for implementation im when the
// task runs with an _installdir: the executable at <mod>/tasks/<file>, the
// task's files and the implementation's files, sorted and without
// duplicates. It is only needed when HasFiles reports true.
func (t *Task) InstallFiles(idx *Index, im *Implementation) ([]File, error) {
	files, err := t.resolve(idx, append(append([]string(nil), t.Metadata.Files...), im.Files...))
	if err != nil {
		return nil, err
	}
	exe := File{LocalPath: im.Path, InstallPath: t.Module + "/tasks/" + im.Name}
	seen := map[string]bool{exe.InstallPath: true}
	out := []File{exe}
	for _, f := range files {
		if !seen[f.InstallPath] {
			seen[f.InstallPath] = true
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].InstallPath < out[j].InstallPath })
	return out, nil
}

// HasFiles reports whether the task, run with im, ships extra files and so
// gets an _installdir.
func (t *Task) HasFiles(im *Implementation) bool {
	return len(t.Metadata.Files) > 0 || im != nil && len(im.Files) > 0
}

func (t *Task) resolve(idx *Index, entries []string) ([]File, error) {
	var out []File
	for _, e := range entries {
		bad := func(format string, args ...any) error {
			return muster.Errorf(muster.KindFile, "task %s: files entry %q: %s", t.Name, e, fmt.Sprintf(format, args...))
		}
		parts := strings.SplitN(e, "/", 3)
		if len(parts) < 3 || parts[2] == "" && !strings.HasSuffix(e, "/") || !mountDirs[parts[1]] {
			return nil, bad("must be <module>/<files|tasks|lib|scripts>/<path>")
		}
		isDirEntry := strings.HasSuffix(e, "/")
		rel := strings.TrimSuffix(parts[2], "/")
		if strings.Contains(e, `\`) || path.IsAbs(rel) || path.Clean("/"+rel) != "/"+rel && rel != "" {
			return nil, bad("the path must be relative and clean")
		}
		modDir, ok := idx.Modules[parts[0]]
		if !ok {
			return nil, bad("module %q is not on the module path", parts[0])
		}
		local := filepath.Join(modDir, parts[1], filepath.FromSlash(rel))
		st, err := os.Stat(local)
		if err != nil {
			return nil, bad("%v", err)
		}
		prefix := parts[0] + "/" + parts[1] + "/"
		if !isDirEntry {
			if st.IsDir() {
				return nil, bad("is a directory: end it with / to ship a directory")
			}
			out = append(out, File{LocalPath: local, InstallPath: prefix + rel})
			continue
		}
		if !st.IsDir() {
			return nil, bad("is not a directory")
		}
		err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			r, err := filepath.Rel(filepath.Join(modDir, parts[1]), p)
			if err != nil {
				return err
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
					return nil // a symlink to a directory or nowhere is skipped
				}
			} else if !d.Type().IsRegular() {
				return nil
			}
			out = append(out, File{LocalPath: p, InstallPath: prefix + filepath.ToSlash(r)})
			return nil
		})
		if err != nil {
			return nil, bad("%v", err)
		}
	}
	return out, nil
}
