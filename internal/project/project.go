// Package project loads what a muster project holds: its inventory, the
// tasks and plans on its module path. The CLI loads it once per command;
// the server and (next) the agent keep a Live copy that reloads when its
// files change, and hand each run the Project it started with.
//
// A project is a directory, found as Bolt finds one: the nearest directory
// upwards holding muster-project.yaml or bolt-project.yaml, else the
// current one. Its inventory is inventory.yaml there (optional: without it
// only ad-hoc targets resolve) and its module path is modules/ and
// site-modules/ there, unless the caller names others.
package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/pull"
	"github.com/muster-run/muster/internal/task"
)

// Markers name the files that make a directory a project.
var Markers = []string{"muster-project.yaml", "bolt-project.yaml"}

// FindDir returns the nearest directory from start upwards that holds a
// project marker, else start itself.
func FindDir(start string) string {
	for dir := start; ; dir = filepath.Dir(dir) {
		for _, m := range Markers {
			if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
				return dir
			}
		}
		if filepath.Dir(dir) == dir {
			return start
		}
	}
}

// Options say where a project's parts are. Zero values take the defaults
// inside Dir.
type Options struct {
	// Dir is the project directory.
	Dir string
	// InventoryFile overrides <Dir>/inventory.yaml; a file named here
	// must exist.
	InventoryFile string
	// ModulePath overrides <Dir>/modules and <Dir>/site-modules.
	ModulePath []string
	// Builtin is the directory of the modules shipped with muster
	// (internal/builtin's Path), "" for none. It goes last on the module
	// path, after ModulePath, so a project's module of the same name wins,
	// as Bolt's bundled modules do; it is not watched for changes.
	Builtin string
	// Inventory carries the command line's connection defaults and the
	// warning sink to the inventory loader.
	Inventory inventory.Options
}

// InventoryPath is the inventory file in use: InventoryFile (absolute),
// else <Dir>/inventory.yaml when it exists, else "" (ad-hoc targets only).
func (o Options) InventoryPath() (string, error) {
	if o.InventoryFile != "" {
		return filepath.Abs(o.InventoryFile)
	}
	path := filepath.Join(o.Dir, "inventory.yaml")
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	return path, nil
}

// Modules is the module path: ModulePath, else modules/ and
// site-modules/ in Dir; then Builtin when set.
func (o Options) Modules() []string {
	own := o.projectModules()
	if o.Builtin == "" {
		return own
	}
	return append(own, o.Builtin)
}

// projectModules is the project's own module path: ModulePath, else
// modules/ and site-modules/ in Dir.
func (o Options) projectModules() []string {
	if len(o.ModulePath) > 0 {
		return append([]string(nil), o.ModulePath...)
	}
	return []string{filepath.Join(o.Dir, "modules"), filepath.Join(o.Dir, "site-modules")}
}

// Watched lists what a reload reads: the inventory file and pull.yaml
// (whether or not they exist yet) and the module path's directory trees,
// but for Builtin, which changes only with muster itself.
func (o Options) Watched() (files, trees []string) {
	if o.InventoryFile != "" {
		files = []string{o.InventoryFile}
	} else {
		files = []string{filepath.Join(o.Dir, "inventory.yaml")}
	}
	return append(files, o.PullPath()), o.projectModules()
}

// PullPath is the pull-mode configuration file: pull.yaml in Dir.
func (o Options) PullPath() string { return filepath.Join(o.Dir, "pull.yaml") }

// LoadPull reads pull.yaml; a project without one has no pull mode (nil).
func (o Options) LoadPull() (*pull.Config, string, error) {
	path := o.PullPath()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", err
	}
	cfg, err := pull.Parse(path, data)
	if err != nil {
		return nil, "", err
	}
	return cfg, path, nil
}

// LoadInventory reads the inventory, or returns an empty one (ad-hoc
// targets only) when the project has none. Errors name the file and line.
func (o Options) LoadInventory() (*inventory.Inventory, string, error) {
	path, err := o.InventoryPath()
	if err != nil {
		return nil, "", err
	}
	opts, err := inventory.WithProjectConfig(o.Inventory, o.Dir)
	if err != nil {
		return nil, "", err
	}
	if path == "" {
		return inventory.Empty(opts), "", nil
	}
	inv, err := inventory.Load(path, opts)
	if err != nil {
		return nil, "", err
	}
	return inv, path, nil
}

// Tasks indexes the tasks on the module path.
func (o Options) Tasks() (*task.Index, error) { return task.Find(o.Modules()) }

// Plans indexes the plans on the module path.
func (o Options) Plans() (*plan.Index, error) { return plan.Find(o.Modules()) }

// Project is one consistent reading of a project: a reload replaces it
// whole, and a run keeps the one it started with.
type Project struct {
	Dir           string
	InventoryFile string // "" when the project has none
	Modules       []string
	Inventory     *inventory.Inventory
	Tasks         *task.Index
	Plans         *plan.Index
	// Pull is pull mode's configuration (pull.yaml; nil when the project
	// has none) and PullFile its file.
	Pull     *pull.Config
	PullFile string
}

// Load reads the inventory, tasks and plans.
func Load(o Options) (*Project, error) {
	inv, path, err := o.LoadInventory()
	if err != nil {
		return nil, err
	}
	tasks, err := o.Tasks()
	if err != nil {
		return nil, err
	}
	plans, err := o.Plans()
	if err != nil {
		return nil, err
	}
	pc, pullFile, err := o.LoadPull()
	if err != nil {
		return nil, err
	}
	return &Project{Dir: o.Dir, InventoryFile: path, Modules: o.Modules(), Inventory: inv, Tasks: tasks, Plans: plans,
		Pull: pc, PullFile: pullFile}, nil
}

// Summary describes p for a log line: inventory, counts of targets,
// groups, tasks and plans, as key-value pairs.
func (p *Project) Summary() []any {
	inv := p.InventoryFile
	if inv == "" {
		inv = "none (ad-hoc targets only)"
	}
	return []any{"dir", p.Dir, "inventory", inv, "targets", p.Inventory.Len(), "groups", len(p.Inventory.GroupNames()),
		"tasks", len(p.Tasks.List(true)), "plans", len(p.Plans.List(true))}
}

// String names the project for messages.
func (p *Project) String() string { return fmt.Sprintf("project %s", p.Dir) }
