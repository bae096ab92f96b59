package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/task"
)

func (a *app) taskIndex() (*task.Index, error) {
	o, err := a.projectOptions(nil)
	if err != nil {
		return nil, err
	}
	idx, err := o.Tasks()
	if err != nil {
		return nil, inputError{err}
	}
	return idx, nil
}

func (a *app) taskCommand() *cobra.Command {
	var paramsFlag string
	var noop bool
	run := &cobra.Command{
		Use:   "run TASK [PARAM=VALUE ...] -t TARGETS",
		Short: "Run a Bolt-format task on targets",
		Long: `Run a task (modules/<module>/tasks/<name>.<ext> plus <name>.json metadata,
exactly as Bolt lays them out) on every target. Parameters are checked
against the metadata before any connection is made; every problem is
reported at once and nothing runs (exit 2).

PARAM=VALUE values are parsed as JSON first and kept as strings when that
fails or the parameter wants a string, as Bolt does. --params takes a JSON
object, @file.json, or - for standard input.

Each run costs one SSH channel per target: the task's files travel with
the first run in the same channel and stay cached (by content hash, in a
private directory) for the rest of the process, removed when it ends.
Sensitive parameters never appear in output, logs or errors.

` + rerunHelp,
		Example: `  muster task run package action=status name=nginx -t web
  muster task run mymod::deploy --params @params.json -t 'app*' --run-as root
  muster task run mymod::migrate --noop -t db1 --format json`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usagef("'%s' needs a TASK name (see 'muster task show')", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			idx, err := a.taskIndex()
			if err != nil {
				return err
			}
			tk, err := idx.Get(args[0])
			if err != nil {
				return inputError{err}
			}
			for _, w := range tk.Warnings {
				if a.flags.verbose {
					fmt.Fprintf(a.stderr, "Warning: %s\n", w)
				}
			}
			raw, err := task.ParseCLIParams(args[1:], paramsFlag, a.stdin, tk.Metadata)
			if err != nil {
				return inputError{err}
			}
			params, err := tk.Metadata.Validate(tk.Name, raw)
			if err != nil {
				return inputError{err}
			}
			if noop && !tk.Metadata.SupportsNoop {
				return usagef("task %s does not support noop (its metadata has no \"supports_noop\": true)", tk.Name)
			}
			tr := &action.TaskRun{Task: tk, Index: idx, Params: params, Noop: noop, Secrets: tk.Metadata.SensitiveValues(params)}
			var rubyWarned sync.Once
			return a.runAction(c, "task", tk.Name, func(ctx context.Context, r *action.Runner, t *muster.Target, o action.Options) *muster.Result {
				if w := engine.RubyWarning(tk, t); w != "" {
					rubyWarned.Do(func() { fmt.Fprintf(a.stderr, "Warning: %s\n", w) })
				}
				return r.Task(ctx, t, tr, o)
			})
		},
	}
	a.flags.registerRun(run, false)
	run.Flags().StringVar(&paramsFlag, "params", "", "parameters as a JSON object, @file.json, or - for stdin")
	run.Flags().BoolVar(&noop, "noop", false, "ask the task not to change anything (only tasks with supports_noop)")

	var all bool
	show := &cobra.Command{
		Use:   "show [TASK]",
		Short: "List tasks, or show one task's parameters",
		Long: `Without TASK, list the tasks on the module path with their descriptions
(private tasks are hidden unless --all). With TASK, print its parameters,
their types, defaults and descriptions, and a usage line.`,
		Example: `  muster task show
  muster task show mymod::deploy`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			idx, err := a.taskIndex()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return a.listTasks(idx, all)
			}
			tk, err := idx.Get(args[0])
			if err != nil {
				return inputError{err}
			}
			return a.showTask(tk)
		},
	}
	show.Flags().BoolVar(&all, "all", false, "include private tasks")
	return group("task", "Run and inspect Bolt-format tasks", run, show)
}

func (a *app) listTasks(idx *task.Index, all bool) error {
	tasks := idx.List(all)
	if a.flags.format == "json" {
		rows := make([][2]string, len(tasks))
		for i, t := range tasks {
			rows[i] = [2]string{t.Name, t.Description()}
		}
		return a.printJSON(map[string]any{"tasks": rows, "modulepath": idx.ModulePath})
	}
	var b strings.Builder
	b.WriteString("Tasks\n")
	width := 0
	for _, t := range tasks {
		width = max(width, len(t.Name))
	}
	for _, t := range tasks {
		fmt.Fprintf(&b, "  %-*s  %s\n", width, t.Name, firstLine(t.Description()))
	}
	if len(tasks) == 0 {
		b.WriteString("  (none found)\n")
	}
	fmt.Fprintf(&b, "\nModule path\n  %s\n\nRun 'muster task show <task>' to see a task's parameters.\n", strings.Join(idx.ModulePath, string(os.PathListSeparator)))
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func (a *app) showTask(tk *task.Task) error {
	md := tk.Metadata
	if a.flags.format == "json" {
		files := []map[string]string{}
		names := make([]string, 0, len(tk.Executables))
		for n := range tk.Executables {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, map[string]string{"name": n, "path": tk.Executables[n]})
		}
		return a.printJSON(map[string]any{"name": tk.Name, "metadata": md.Raw, "files": files, "module_dir": tk.Dir})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", tk.Name)
	if d := tk.Description(); d != "" {
		fmt.Fprintf(&b, " - %s", d)
	}
	b.WriteString("\n\nUSAGE\n  muster task run " + tk.Name)
	for _, n := range md.ParamOrder {
		p := md.Parameters[n]
		if p.Required() {
			fmt.Fprintf(&b, " %s=<value>", n)
		} else {
			fmt.Fprintf(&b, " [%s=<value>]", n)
		}
	}
	if md.SupportsNoop {
		b.WriteString(" [--noop]")
	}
	b.WriteString(" -t <targets>\n")
	if len(md.ParamOrder) > 0 {
		b.WriteString("\nPARAMETERS\n")
		for _, n := range md.ParamOrder {
			p := md.Parameters[n]
			typ := p.TypeString
			if typ == "" {
				typ = "Any"
			}
			fmt.Fprintf(&b, "  %s: %s", n, typ)
			if p.Sensitive {
				b.WriteString(" (sensitive)")
			}
			b.WriteString("\n")
			if p.HasDefault {
				d, _ := json.Marshal(p.Default)
				fmt.Fprintf(&b, "      Default: %s\n", d)
			}
			if p.Description != "" {
				fmt.Fprintf(&b, "      %s\n", strings.ReplaceAll(p.Description, "\n", "\n      "))
			}
		}
	}
	fmt.Fprintf(&b, "\nMODULE\n  %s\n", tk.Dir)
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
