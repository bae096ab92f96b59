package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/builtin"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/project"
	"github.com/muster-run/muster/internal/target"
)

// projectDir finds the project directory: --project, $MUSTER_PROJECT, the
// nearest directory upwards holding a project file, else the current one.
func (a *app) projectDir() (string, error) {
	if a.flags.project != "" {
		return checkDir("--project", a.flags.project)
	}
	if p := os.Getenv("MUSTER_PROJECT"); p != "" {
		return checkDir("MUSTER_PROJECT", p)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return project.FindDir(cwd), nil
}

func checkDir(from, p string) (string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return "", usagef("%s: %v", from, err)
	}
	if !fi.IsDir() {
		return "", usagef("%s: %s is not a directory", from, p)
	}
	return filepath.Abs(p)
}

// projectOptions turns --project, --inventoryfile, --modulepath and the
// connection flags (the inventory's lowest-precedence defaults, as in
// Bolt) into the project's options. The built-in modules go last on the
// module path, and the inventory's task plugin runs tasks on localhost.
// The CLI's commands and the server load their project with these.
func (a *app) projectOptions(c *cobra.Command) (project.Options, error) {
	dir, err := a.projectDir()
	if err != nil {
		return project.Options{}, err
	}
	o := project.Options{Dir: dir, InventoryFile: a.flags.inventoryFile}
	if a.flags.modulepath != "" {
		o.ModulePath = filepath.SplitList(a.flags.modulepath)
	}
	if o.Builtin, err = builtin.Path(); err != nil {
		// Without them the project's own modules still work.
		if _, dup := builtinWarned.LoadOrStore(a, true); !dup {
			fmt.Fprintf(a.stderr, "Warning: the built-in modules (package, service, facts, reboot) are not available: %v\n", err)
		}
	}
	o.Inventory.Defaults = map[string]any{}
	if c != nil && c.Flags().Lookup("targets") != nil {
		if o.Inventory.Defaults, err = a.flags.defaults(c); err != nil {
			return project.Options{}, err
		}
	}
	if a.flags.verbose {
		o.Inventory.Warnf = func(format string, args ...any) { fmt.Fprintf(a.stderr, "Warning: "+format+"\n", args...) }
	}
	o.Inventory.RunTask = a.inventoryTask(o)
	return o, nil
}

// builtinWarned holds the apps that said the built-in modules are
// missing: once per command, however often it loads the project.
var builtinWarned sync.Map

// inventoryTask is the inventory's task plugin: it runs a task from the
// project's module path on localhost, with the local transport, through
// the engine, and returns its result. Each call indexes the module path
// then (a server's project may have reloaded) and has its own runner,
// whose task cache is removed when the task is done. The plugin's
// results are cached per run by the inventory.
func (a *app) inventoryTask(o project.Options) func(ctx context.Context, name string, params map[string]any) (map[string]any, error) {
	return func(ctx context.Context, name string, params map[string]any) (map[string]any, error) {
		idx, err := o.Tasks()
		if err != nil {
			return nil, err
		}
		runner, closeRunner := newLocalRunner()
		defer closeRunner()
		return engine.LocalTask(ctx, runner, idx, name, params, func(msg string) { fmt.Fprintf(a.stderr, "Warning: %s\n", msg) })
	}
}

// loadInventory reads --inventoryfile, or inventory.yaml in the project
// directory. A missing default file means ad-hoc targets only, as in Bolt;
// a missing file named with -i is an error.
func (a *app) loadInventory(c *cobra.Command) (*inventory.Inventory, error) {
	o, err := a.projectOptions(c)
	if err != nil {
		return nil, err
	}
	inv, _, err := o.LoadInventory()
	if err != nil {
		return nil, inputError{err}
	}
	return inv, nil
}

// inventoryPath is the inventory file in use, "" for none.
func (a *app) inventoryPath() (string, error) {
	o, err := a.projectOptions(nil)
	if err != nil {
		return "", err
	}
	return o.InventoryPath()
}

// resolveTargets loads the inventory and resolves -t.
func (a *app) resolveTargets(c *cobra.Command) (*inventory.Inventory, []*muster.Target, error) {
	if len(a.flags.targets) == 0 {
		return nil, nil, usagef("'%s' needs targets: add -t with a group, name, glob or URI (for example -t all or -t localhost)", c.CommandPath())
	}
	inv, err := a.loadInventory(c)
	if err != nil {
		return nil, nil, err
	}
	specs, err := a.targetSpecs(a.flags.targets)
	if err != nil {
		return nil, nil, err
	}
	targets, err := target.Resolve(inv, specs)
	if err != nil {
		return nil, nil, inputError{err}
	}
	if len(targets) == 0 {
		return nil, nil, usagef("no targets match %q", a.flags.targets)
	}
	return inv, targets, nil
}

// targetSpecs reads the target lists a command line points at: a "-"
// spec is replaced with the targets listed on standard input, one or more
// per line, as Bolt's "-t -" does, and "@file" tokens with the file's
// targets. Only the client reads files: a server refuses "@" specs.
func (a *app) targetSpecs(specs []string) ([]string, error) {
	specs, err := a.stdinSpecs(specs)
	if err != nil {
		return nil, err
	}
	out, err := target.ExpandFiles(specs)
	if err != nil {
		return nil, inputError{err}
	}
	return out, nil
}

// stdinSpecs replaces a "-" spec with the targets listed on standard input.
func (a *app) stdinSpecs(specs []string) ([]string, error) {
	out := make([]string, 0, len(specs))
	for _, s := range specs {
		if s != "-" {
			out = append(out, s)
			continue
		}
		b, err := io.ReadAll(a.stdin)
		if err != nil {
			return nil, usagef("reading targets from standard input: %v", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				out = append(out, line)
			}
		}
	}
	return out, nil
}
