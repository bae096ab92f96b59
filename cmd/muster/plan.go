package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/engine"
	"github.com/muster-run/muster/internal/output"
	"github.com/muster-run/muster/internal/plan"
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

Scripts and files are found as in Bolt: <module>/scripts/<path>,
<module>/files/<path>, <module>/<path> (under the module's files/), then a
path relative to the project, then an absolute path. A step whose script,
file or task cannot be found fails before it starts, naming every place
tried (exit 2).

A resources step (Bolt's: a list of resource declarations, with targets and
optional noop) is applied with Puppet on the targets, as 'muster apply' does:
one manifest and the module path per target, puppet apply --detailed-exitcodes,
a ResultSet of ApplyResults. A declaration Puppet cannot take fails before
the step starts, naming the plan's file and line. Starlark plans have
apply(targets, resources, noop=False) and apply_prep(targets, install=False).

Human output shows each step as it starts and finishes; --stream shows
target output live; --format json prints the plan's return value. verbose
steps and out::verbose print only with --verbose (which also shows each
target's result). A task's "_sensitive" output is always shown as
"Sensitive [value redacted]".

--rerun fills the plan's targets from the last run's .rerun.json; a plan
that returns a ResultSet (or fails in a step) records it there, as in
Bolt, and one that returns anything else removes it.

` + rerunHelp,
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
	o, err := a.projectOptions(nil)
	if err != nil {
		return nil, err
	}
	idx, err := o.Plans()
	if err != nil {
		return nil, inputError{err}
	}
	return idx, nil
}

func (a *app) runPlan(c *cobra.Command, name string, args []string, paramsFlag string) error {
	opts, rolling, err := a.runSettings()
	if err != nil {
		return err
	}
	if _, err := a.applyRerun(); err != nil { // --rerun fills -t
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
	progress := a.stdout
	if a.flags.format == "json" {
		progress = a.stderr // stdout holds the plan's return value
	}
	pr := &engine.PlanRunner{Inventory: inv, Tasks: tasks, Runner: runner, Action: opts, Dir: dir,
		Concurrency: a.flags.concurrency, Timeout: a.flags.timeout, Out: progress}
	pr.Warn = func(msg string) { a.warnf("%s", msg) }
	if a.flags.stream {
		pr.Action.Stream = output.NewStream(a.stdout, nil).Writers
	}
	if a.flags.verbose {
		pr.Finished = output.NewHuman(a.stdout, output.HumanOptions{Verbose: true, Streamed: a.flags.stream}).Result
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
	pr.Say("Starting: plan %s", p.Name)
	ret, err := p.Run(c.Context(), pr, params, plan.Options{Concurrency: a.flags.concurrency, Index: idx, Batch: batch, Verbose: a.flags.verbose})
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(c.Context()), 30*time.Second)
	pr.Cleanup(cleanupCtx) // what resources steps kept on targets
	runner.Cleanup(cleanupCtx)
	cancel()
	a.savePlanRerun(ret, err)
	if err != nil {
		var le *plan.LoadError
		if errors.As(err, &le) || muster.KindOf(err) == muster.KindInvalid {
			return inputError{err}
		}
		pr.Say("Finished: plan %s in %s", p.Name, time.Since(start).Round(10*time.Millisecond))
		a.printPlanError(err)
		return errFailedRun
	}
	pr.Say("Finished: plan %s in %s", p.Name, time.Since(start).Round(10*time.Millisecond))
	ret = output.RedactValue(ret) // a task's _sensitive value is never printed
	if a.flags.format == "json" {
		return a.printJSON(ret)
	}
	if ret != nil {
		b, _ := json.MarshalIndent(ret, "", "  ")
		fmt.Fprintln(a.stdout, string(b))
	} else {
		fmt.Fprintln(a.stdout, "Plan completed successfully with no result")
	}
	return nil
}

func (a *app) printPlanError(err error) {
	e := output.RedactError(muster.AsError(err, plan.KindPlanFailure))
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
