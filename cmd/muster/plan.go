package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/executor"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/output"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/target"
	"github.com/muster-run/muster/internal/task"
)

func (a *app) planCommand() *cobra.Command {
	var paramsFlag string
	run := &cobra.Command{
		Use:   "run PLAN [PARAM=VALUE ...] [-t TARGETS]",
		Short: "Run a YAML or Starlark plan",
		Long: `Run a plan: modules/<module>/plans/<name>.yaml (Bolt's YAML plans, unchanged)
or <name>.star (Starlark, for loops, conditions and error handling).
As in Bolt, -t fills the plan's "targets" parameter. Parameters are
checked, and every expression in a YAML plan is parsed, before any target
is touched; a problem names the file and line (exit 2).

Every step reuses the run's open SSH connections, so a plan costs one
handshake per target however many steps it has. Steps and the whole plan
can run in rolling batches (--batch, --canary, --max-failures, --pause, or
batch/canary/max_failures/pause keys on a step).

Human output shows each step as it starts and finishes; --stream shows
target output live; --format json prints the plan's return value.`,
		Example: `  muster plan run deploy::rolling -t web version=1.4.2
  muster plan run ops::reboot -t 'app*' --batch 10% --canary 1 --max-failures 2`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 {
				return usagef("'%s' needs a PLAN name (see 'muster plan show')", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error { return a.runPlan(c, args[0], args[1:], paramsFlag) },
	}
	a.flags.registerRun(run, false)
	run.Flags().StringVar(&paramsFlag, "params", "", "parameters as a JSON object, @file.json, or - for stdin")

	var all bool
	show := &cobra.Command{
		Use:   "show [PLAN]",
		Short: "List plans, or show one plan's parameters",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			idx, err := a.planIndex()
			if err != nil {
				return err
			}
			if len(args) == 0 {
				return a.listPlans(idx, all)
			}
			p, err := idx.Get(args[0])
			if err != nil {
				return inputError{err}
			}
			return a.showPlan(p)
		},
	}
	show.Flags().BoolVar(&all, "all", false, "include private plans")
	return group("plan", "Run and inspect plans", run, show)
}

func (a *app) planIndex() (*plan.Index, error) {
	mp, err := a.modulePath()
	if err != nil {
		return nil, err
	}
	idx, err := plan.Find(mp)
	if err != nil {
		return nil, inputError{err}
	}
	return idx, nil
}

func (a *app) listPlans(idx *plan.Index, all bool) error {
	plans := idx.List(all)
	if a.flags.format == "json" {
		rows := make([][2]string, len(plans))
		for i, p := range plans {
			rows[i] = [2]string{p.Name, p.Description}
		}
		return a.printJSON(map[string]any{"plans": rows})
	}
	var b strings.Builder
	b.WriteString("Plans\n")
	width := 0
	for _, p := range plans {
		width = max(width, len(p.Name))
	}
	for _, p := range plans {
		note := firstLine(p.Description)
		if p.Err != nil {
			note = "(does not load: run 'muster plan show " + p.Name + "')"
		}
		fmt.Fprintf(&b, "  %-*s  %s\n", width, p.Name, note)
	}
	if len(plans) == 0 {
		b.WriteString("  (none found)\n")
	}
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}

func (a *app) showPlan(p *plan.Plan) error {
	if a.flags.format == "json" {
		params := map[string]any{}
		for _, pa := range p.Parameters {
			params[pa.Name] = map[string]any{"type": pa.TypeString, "default_value": pa.Default, "description": pa.Description}
		}
		return a.printJSON(map[string]any{"name": p.Name, "description": p.Description, "parameters": params, "file": p.File})
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s", p.Name)
	if p.Description != "" {
		fmt.Fprintf(&b, " - %s", p.Description)
	}
	b.WriteString("\n\nUSAGE\n  muster plan run " + p.Name)
	for _, pa := range p.Parameters {
		switch {
		case pa.Name == "targets":
			b.WriteString(" -t <targets>")
		case pa.Required():
			fmt.Fprintf(&b, " %s=<value>", pa.Name)
		default:
			fmt.Fprintf(&b, " [%s=<value>]", pa.Name)
		}
	}
	b.WriteString("\n")
	if len(p.Parameters) > 0 {
		b.WriteString("\nPARAMETERS\n")
		for _, pa := range p.Parameters {
			fmt.Fprintf(&b, "  %s: %s\n", pa.Name, pa.TypeString)
			if pa.HasDefault {
				d, _ := json.Marshal(pa.Default)
				fmt.Fprintf(&b, "      Default: %s\n", d)
			}
			if pa.Description != "" {
				fmt.Fprintf(&b, "      %s\n", pa.Description)
			}
		}
	}
	fmt.Fprintf(&b, "\nFILE\n  %s\n", p.File)
	_, err := fmt.Fprint(a.stdout, b.String())
	return err
}

func (a *app) runPlan(c *cobra.Command, name string, args []string, paramsFlag string) error {
	opts, rolling, err := a.runSettings()
	if err != nil {
		return err
	}
	idx, err := a.planIndex()
	if err != nil {
		return err
	}
	p, err := idx.Get(name)
	if err != nil {
		return inputError{err}
	}
	params, err := p.ParseCLIParams(args, paramsFlag, a.stdin)
	if err != nil {
		return inputError{err}
	}
	if len(a.flags.targets) > 0 {
		if _, ok := params["targets"]; ok {
			return usagef("give targets either with -t or as targets=..., not both")
		}
		specs, err := a.targetSpecs(a.flags.targets)
		if err != nil {
			return err
		}
		params["targets"] = strings.Join(specs, ",")
	}
	inv, err := a.loadInventory(c)
	if err != nil {
		return err
	}
	tasks, err := a.taskIndex()
	if err != nil {
		return err
	}
	if opts.SudoPassword, err = a.flags.sudoPassword(); err != nil {
		return err
	}
	dir, err := a.projectDir()
	if err != nil {
		return err
	}
	runner, closeRunner := a.newRunner()
	defer closeRunner()
	pr := &planRunner{a: a, inv: inv, tasks: tasks, runner: runner, project: dir, opts: opts}
	if a.flags.stream {
		pr.opts.Stream = output.NewStream(a.stdout, nil).Writers
	}
	var batch plan.Batch
	if rolling != nil {
		batch = plan.Batch{Size: rolling.Size, Percent: rolling.Percent, Canary: rolling.Canary, Pause: rolling.Pause,
			MaxFailures: rolling.MaxFailures, MaxFailuresPercent: rolling.MaxFailuresPercent, MaxFailuresSet: rolling.MaxFailures >= 0 || rolling.MaxFailuresPercent > 0}
	}
	// Everything that can be checked before a step runs is, so a bad
	// parameter or target never prints "Starting".
	if err := p.Validate(params); err != nil {
		return inputError{err}
	}
	if spec, ok := params["targets"].(string); ok {
		if _, err := pr.ResolveTargets([]string{spec}); err != nil {
			return inputError{err}
		}
	}
	start := time.Now()
	pr.say("Starting: plan %s", p.Name)
	ret, err := p.Run(c.Context(), pr, params, plan.Options{Concurrency: a.flags.concurrency, Index: idx, Batch: batch})
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(c.Context()), 30*time.Second)
	runner.Cleanup(cleanupCtx)
	cancel()
	if err != nil {
		var le *plan.LoadError
		if errors.As(err, &le) || muster.KindOf(err) == muster.KindInvalid {
			return inputError{err}
		}
		pr.say("Finished: plan %s in %s", p.Name, time.Since(start).Round(10*time.Millisecond))
		a.printPlanError(err)
		return errFailedRun
	}
	pr.say("Finished: plan %s in %s", p.Name, time.Since(start).Round(10*time.Millisecond))
	if a.flags.format == "json" {
		return a.printJSON(plan.ToData(ret))
	}
	if ret != nil {
		b, _ := json.MarshalIndent(plan.ToData(ret), "", "  ")
		fmt.Fprintln(a.stdout, string(b))
	} else {
		fmt.Fprintln(a.stdout, "Plan completed successfully with no result")
	}
	return nil
}

func (a *app) printPlanError(err error) {
	e := muster.AsError(err, plan.KindPlanFailure)
	if a.flags.format == "json" {
		b, _ := json.MarshalIndent(e, "", "  ")
		fmt.Fprintln(a.stdout, string(b))
		return
	}
	fmt.Fprintf(a.stderr, "Error: %s\n", e.Msg)
	if rs, ok := e.Details["result_set"].([]*muster.Result); ok {
		h := output.NewHuman(a.stderr, output.HumanOptions{})
		for _, r := range rs {
			if !r.OK() {
				h.Result(r)
			}
		}
	}
}

// planRunner carries out plan steps with the run's single action runner,
// so every step shares the open SSH connections.
type planRunner struct {
	a       *app
	inv     *inventory.Inventory
	tasks   *task.Index
	runner  *action.Runner
	opts    action.Options
	project string
	// allow, when set, vets every target a plan step resolves (the
	// server's rule on local targets).
	allow func(*muster.Target) error
}

var _ plan.Runner = (*planRunner)(nil)

func (p *planRunner) say(format string, args ...any) {
	w := p.a.stdout
	if p.a.flags.format == "json" {
		w = p.a.stderr
	}
	fmt.Fprintf(w, format+"\n", args...)
}

func (p *planRunner) ResolveTargets(specs []string) ([]*muster.Target, error) {
	ts, err := target.Resolve(p.inv, specs)
	if err != nil || p.allow == nil {
		return ts, err
	}
	for _, t := range ts {
		if err := p.allow(t); err != nil {
			return nil, muster.Errorf(muster.KindInvalid, "%v", err)
		}
	}
	return ts, nil
}

func (p *planRunner) Message(text string) { p.say("%s", text) }

func (p *planRunner) StepStarted(desc string, targets []*muster.Target) {
	on := fmt.Sprintf("%d targets", len(targets))
	if len(targets) <= 5 {
		on = strings.Join(names(targets), ", ")
	}
	p.say("Starting: %s on %s", desc, on)
}

func (p *planRunner) StepFinished(desc string, results []*muster.Result, elapsed time.Duration) {
	failed := 0
	for _, r := range results {
		if !r.OK() {
			failed++
		}
	}
	p.say("Finished: %s with %d failure%s in %.2f sec", desc, failed, map[bool]string{true: "", false: "s"}[failed == 1], elapsed.Seconds())
}

// fan runs one action on every target through the executor, honouring
// the step's rolling options, and prints per-target results with -v.
func (p *planRunner) fan(ctx context.Context, targets []*muster.Target, name, object string, o plan.StepOptions,
	fn func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result) []*muster.Result {
	opts := p.opts
	if o.RunAs != "" {
		opts.RunAs = o.RunAs
	}
	if len(o.Env) > 0 {
		env := map[string]string{}
		for k, v := range p.opts.Env {
			env[k] = v
		}
		for k, v := range o.Env {
			env[k] = v
		}
		opts.Env = env
	}
	eo := executor.Options{Concurrency: p.a.flags.concurrency, Timeout: p.a.flags.timeout}
	if !o.Batch.IsZero() {
		r := &executor.Rolling{Size: o.Batch.Size, Percent: o.Batch.Percent, Canary: o.Batch.Canary, Pause: o.Batch.Pause,
			MaxFailures: executor.NoLimit}
		if o.Batch.MaxFailuresSet {
			r.MaxFailures, r.MaxFailuresPercent = o.Batch.MaxFailures, o.Batch.MaxFailuresPercent
		}
		eo.Rolling = r
	}
	if p.a.flags.verbose {
		h := output.NewHuman(p.a.stdout, output.HumanOptions{Verbose: true, Streamed: p.a.flags.stream})
		eo.Finished = h.Result
	}
	return executor.Run(ctx, targets, eo, name, object, func(ctx context.Context, t *muster.Target) *muster.Result {
		return fn(ctx, t, opts)
	})
}

func (p *planRunner) RunCommand(ctx context.Context, targets []*muster.Target, command string, o plan.StepOptions) ([]*muster.Result, error) {
	return p.fan(ctx, targets, "command", command, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.runner.Command(ctx, t, command, opts)
	}), nil
}

// moduleFile finds "mod/path" under a module's files/ (and scripts/ for
// scripts), or takes an existing local path as is.
func (p *planRunner) moduleFile(ref string, dirs ...string) (string, error) {
	if _, err := os.Stat(ref); err == nil {
		return ref, nil
	}
	mod, rest, ok := strings.Cut(ref, "/")
	if ok {
		if dir, found := p.tasks.Modules[mod]; found {
			for _, d := range dirs {
				f := filepath.Join(dir, d, rest)
				if _, err := os.Stat(f); err == nil {
					return f, nil
				}
			}
		}
	}
	return "", muster.Errorf(muster.KindInvalid, "cannot find %q: not a local file, nor <module>/<path> under a module's %s", ref, strings.Join(dirs, "/ or ")+"/")
}

func (p *planRunner) RunScript(ctx context.Context, targets []*muster.Target, script string, args []string, o plan.StepOptions) ([]*muster.Result, error) {
	path, err := p.moduleFile(script, "files", "scripts")
	if err != nil {
		return nil, err
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "reading script: %w", err)
	}
	return p.fan(ctx, targets, "script", script, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.runner.Script(ctx, t, script, content, args, opts)
	}), nil
}

func (p *planRunner) RunTask(ctx context.Context, targets []*muster.Target, name string, params map[string]any, o plan.StepOptions) ([]*muster.Result, error) {
	tk, err := p.tasks.Get(name)
	if err != nil {
		return nil, err
	}
	valid, err := tk.Metadata.Validate(tk.Name, params)
	if err != nil {
		return nil, muster.AsError(err, muster.KindInvalid)
	}
	if o.Noop && !tk.Metadata.SupportsNoop {
		return nil, muster.Errorf(muster.KindInvalid, "task %s does not support noop", tk.Name)
	}
	tr := &action.TaskRun{Task: tk, Index: p.tasks, Params: valid, Noop: o.Noop, Secrets: tk.Metadata.SensitiveValues(valid)}
	return p.fan(ctx, targets, "task", tk.Name, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.runner.Task(ctx, t, tr, opts)
	}), nil
}

func (p *planRunner) Upload(ctx context.Context, targets []*muster.Target, src, dest string, o plan.StepOptions) ([]*muster.Result, error) {
	path, err := p.moduleFile(src, "files")
	if err != nil {
		return nil, err
	}
	archive, err := action.Pack(path)
	if err != nil {
		return nil, muster.AsError(err, muster.KindInvalid)
	}
	return p.fan(ctx, targets, "upload", src, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.runner.Upload(ctx, t, archive, dest, opts)
	}), nil
}

func (p *planRunner) Download(ctx context.Context, targets []*muster.Target, src, dest string, o plan.StepOptions) ([]*muster.Result, error) {
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(p.project, "downloads", dest) // as Bolt does for plans
	}
	return p.fan(ctx, targets, "download", src, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.runner.Download(ctx, t, src, dest, opts)
	}), nil
}

// WaitUntilAvailable runs a no-op on each target until it answers or the
// timeout passes, reconnecting with backoff (1 s doubling to 5 s).
func (p *planRunner) WaitUntilAvailable(ctx context.Context, targets []*muster.Target, timeout time.Duration) ([]*muster.Result, error) {
	opts := p.opts
	opts.RunAs = "" // a no-op needs no privileges
	return executor.Run(ctx, targets, executor.Options{Concurrency: p.a.flags.concurrency}, "wait_until_available", "", func(ctx context.Context, t *muster.Target) *muster.Result {
		deadline := time.Now().Add(timeout)
		backoff := time.Second
		for {
			attemptCtx, cancel := context.WithTimeout(ctx, min(10*time.Second, max(time.Second, time.Until(deadline))))
			res := p.runner.Command(attemptCtx, t, "true", opts)
			cancel()
			if res.OK() || ctx.Err() != nil {
				return res
			}
			if time.Now().Add(backoff).After(deadline) {
				res.Error = muster.Errorf(muster.KindConnect, "%s did not become available within %s: %s", t.Name, timeout, res.Error.Msg).
					WithCode("WAIT_TIMEOUT")
				return res
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}), nil
}
