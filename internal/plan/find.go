package plan

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
	"github.com/muster-run/muster/internal/task"
)

// Plan kinds.
const (
	KindYAML     = "yaml"
	KindStarlark = "starlark"
)

// Plan is one plan found on the module path (or loaded from a file).
type Plan struct {
	// Name is "mod::path::name", or "mod" for init.
	Name        string
	File        string
	Description string
	// Parameters are in declaration order (sorted by name for Starlark
	// plans that declare them in a dict).
	Parameters []*Param
	Private    bool
	// Kind is KindYAML or KindStarlark.
	Kind string
	// Batch is the plan's own rolling execution (YAML top-level batch,
	// canary, max_failures and pause keys): the default of every step.
	Batch Batch
	// Err is the load error (a *LoadError) when the plan is unusable;
	// Index.Get returns it, List still lists the plan.
	Err error

	yaml *yamlPlan
	star *starPlan
}

// Param is one declared plan parameter.
type Param struct {
	Name string
	// TypeString is the type as written; "" means Any.
	TypeString  string
	Type        puppet.Type
	Default     any
	HasDefault  bool
	Description string
}

// Required reports whether a value must be given: a parameter without a
// default is required unless its declared type accepts undef (Optional,
// Any, ...). A parameter with no type and no default is required, as in
// Bolt, where a Puppet parameter without a default must be passed.
func (p *Param) Required() bool {
	return !p.HasDefault && (p.TypeString == "" || !p.Type.Optional())
}

// LoadError is a plan that cannot be loaded: a syntax error, an unknown
// key, or a construct outside what muster supports. It names the file and
// line.
type LoadError struct {
	File string
	Line int
	Msg  string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// As makes a LoadError read as muster's invalid-input error with the file
// and line in its details (Bolt's error hash), for errors.As and
// muster.AsError, so JSON output and the API carry them.
func (e *LoadError) As(target any) bool {
	p, ok := target.(**muster.Error)
	if !ok {
		return false
	}
	me := &muster.Error{Kind: muster.KindInvalid, Msg: e.Error(), Details: map[string]any{"file": e.File}, Err: e}
	if e.Line > 0 {
		me.Details["line"] = e.Line
	}
	*p = me
	return true
}

// Index is the set of plans on a module path.
type Index struct {
	ModulePath []string
	plans      map[string]*Plan
}

var segment = regexp.MustCompile(`\A[a-z][a-z0-9_]*\z`)

// Find discovers plans under <mod>/plans/ on modulepath. The first module
// of a name on the path wins. A plan that fails to load is still indexed,
// with Err set.
func Find(modulepath []string) (*Index, error) {
	idx := &Index{ModulePath: modulepath, plans: map[string]*Plan{}}
	err := task.WalkModules(modulepath, func(mod, dir string) error {
		return idx.loadModule(mod, filepath.Join(dir, "plans"))
	})
	if err != nil {
		return nil, err
	}
	return idx, nil
}

func (idx *Index) loadModule(mod, pdir string) error {
	err := filepath.WalkDir(pdir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == pdir {
				return fs.SkipDir
			}
			return err
		}
		rel, _ := filepath.Rel(pdir, p)
		if d.IsDir() {
			if p != pdir && !segment.MatchString(d.Name()) {
				return fs.SkipDir
			}
			return nil
		}
		ext := filepath.Ext(rel)
		if ext != ".yaml" && ext != ".star" {
			return nil
		}
		segs := strings.Split(filepath.ToSlash(strings.TrimSuffix(rel, ext)), "/")
		for _, s := range segs {
			if !segment.MatchString(s) {
				return nil
			}
		}
		name := mod + "::" + strings.Join(segs, "::")
		if len(segs) == 1 && segs[0] == "init" {
			name = mod
		}
		if idx.plans[name] != nil {
			return nil // a .yaml and a .star of one name: the first wins
		}
		pl, lerr := LoadFile(name, p)
		if lerr != nil {
			pl = &Plan{Name: name, File: p, Err: lerr, Kind: kindOf(p)}
		}
		idx.plans[name] = pl
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func kindOf(file string) string {
	if strings.HasSuffix(file, ".star") {
		return KindStarlark
	}
	return KindYAML
}

// LoadFile loads one plan file (.yaml or .star) under the given name,
// validating everything that can be checked without running it.
func LoadFile(name, file string) (*Plan, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &LoadError{File: file, Msg: err.Error()}
	}
	if kindOf(file) == KindStarlark {
		return loadStarlark(name, file, data)
	}
	return LoadYAML(name, file, data)
}

// List returns the plans sorted by name, without private ones unless
// includePrivate is set.
func (idx *Index) List(includePrivate bool) []*Plan {
	var out []*Plan
	for _, p := range idx.plans {
		if includePrivate || !p.Private {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Get returns the named plan, its load error, or an error suggesting a
// near name.
func (idx *Index) Get(name string) (*Plan, error) {
	if idx != nil {
		if p, ok := idx.plans[name]; ok {
			if p.Err != nil {
				return nil, p.Err
			}
			return p, nil
		}
	}
	msg := fmt.Sprintf("could not find a plan named %q", name)
	var names []string
	if idx != nil {
		names = slices.Sorted(maps.Keys(idx.plans))
	}
	if best := puppet.Closest(name, names); best != "" {
		msg += fmt.Sprintf("; did you mean %q?", best)
	} else {
		msg += "; run 'muster plan show' for the list of plans"
	}
	return nil, muster.Errorf(muster.KindInvalid, "%s", msg)
}

// Add registers p in the index (used by tests and for ad hoc plan files).
func (idx *Index) Add(p *Plan) {
	if idx.plans == nil {
		idx.plans = map[string]*Plan{}
	}
	idx.plans[p.Name] = p
}
