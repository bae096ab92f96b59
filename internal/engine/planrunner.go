package engine

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/apply"
	"github.com/muster-run/muster/internal/executor"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/target"
	"github.com/muster-run/muster/internal/task"
)

// PlanRunner carries out a plan's steps (plan.Runner) with one action
// runner, so every step shares the run's open connections. The CLI's
// 'plan run' and a queued plan job use it alike; they differ only in
// where progress goes (Out) and what vets targets (Allow). Its resources
// steps (plan.Applier) apply Puppet code with one apply.Applier per run:
// call Cleanup when the plan is done.
type PlanRunner struct {
	Inventory *inventory.Inventory
	Tasks     *task.Index
	Runner    *action.Runner
	// Action holds the options every step starts from (run-as, sudo
	// password, environment, tmpdir, live output).
	Action action.Options
	// Dir is the project directory: relative download destinations go
	// under <Dir>/downloads, as in Bolt.
	Dir string
	// Concurrency is how many targets a step acts on at once (default
	// DefaultConcurrency); Timeout limits each target's action (0: none).
	Concurrency int
	Timeout     time.Duration
	// Out receives the step lines ("Starting: ...", "Finished: ...") and
	// the plan's messages. Nil discards them.
	Out io.Writer
	// Finished, when set, sees every target's result as it completes
	// (the CLI prints them with --verbose).
	Finished func(*muster.Result)
	// Allow, when set, vets every target a step resolves: a server
	// refuses local targets to callers that may not use them.
	Allow func(*muster.Target) error
	// Warn, when set, receives warnings (once each per run), such as a
	// Ruby task running with the system Ruby; nil writes them to Out.
	Warn func(msg string)

	warned sync.Map

	applyOnce sync.Once
	ap        *apply.Applier // the run's applier (planapply.go)
}

// warn says msg once per run.
func (p *PlanRunner) warn(msg string) {
	if _, dup := p.warned.LoadOrStore(msg, true); dup {
		return
	}
	if p.Warn != nil {
		p.Warn(msg)
		return
	}
	p.Say("Warning: %s", msg)
}

var (
	_ plan.Runner  = (*PlanRunner)(nil)
	_ plan.Checker = (*PlanRunner)(nil)
)

func (p *PlanRunner) concurrency() int {
	if p.Concurrency > 0 {
		return p.Concurrency
	}
	return DefaultConcurrency
}

// Say writes one progress line to Out.
func (p *PlanRunner) Say(format string, args ...any) {
	if p.Out != nil {
		fmt.Fprintf(p.Out, format+"\n", args...)
	}
}

func (p *PlanRunner) ResolveTargets(specs []string) ([]*muster.Target, error) {
	ts, err := target.Resolve(p.Inventory, specs)
	if err != nil || p.Allow == nil {
		return ts, err
	}
	for _, t := range ts {
		if err := p.Allow(t); err != nil {
			return nil, muster.Errorf(muster.KindInvalid, "%v", err)
		}
	}
	return ts, nil
}

func (p *PlanRunner) Message(text string) { p.Say("%s", text) }

func (p *PlanRunner) StepStarted(desc string, targets []*muster.Target) {
	on := fmt.Sprintf("%d targets", len(targets))
	if len(targets) <= 5 {
		on = strings.Join(muster.Names(targets), ", ")
	}
	p.Say("Starting: %s on %s", desc, on)
}

func (p *PlanRunner) StepFinished(desc string, results []*muster.Result, elapsed time.Duration) {
	failed := 0
	for _, r := range results {
		if !r.OK() {
			failed++
		}
	}
	p.Say("Finished: %s with %d failure%s in %.2f sec", desc, failed, map[bool]string{true: "", false: "s"}[failed == 1], elapsed.Seconds())
}

// fan runs one action on every target through the executor, honouring
// the step's rolling options, and prints per-target results with -v.
func (p *PlanRunner) fan(ctx context.Context, targets []*muster.Target, name, object string, o plan.StepOptions,
	fn func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result) []*muster.Result {
	opts := p.Action
	if o.RunAs != "" {
		opts.RunAs = o.RunAs
	}
	if len(o.Env) > 0 {
		env := map[string]string{}
		for k, v := range p.Action.Env {
			env[k] = v
		}
		for k, v := range o.Env {
			env[k] = v
		}
		opts.Env = env
	}
	eo := executor.Options{Concurrency: p.concurrency(), Timeout: p.Timeout}
	if !o.Batch.IsZero() {
		r := &executor.Rolling{Size: o.Batch.Size, Percent: o.Batch.Percent, Canary: o.Batch.Canary, Pause: o.Batch.Pause,
			MaxFailures: executor.NoLimit}
		if o.Batch.MaxFailuresSet {
			r.MaxFailures, r.MaxFailuresPercent = o.Batch.MaxFailures, o.Batch.MaxFailuresPercent
		}
		eo.Rolling = r
	}
	eo.Finished = p.Finished
	return executor.Run(ctx, targets, eo, name, object, func(ctx context.Context, t *muster.Target) *muster.Result {
		return fn(ctx, t, opts)
	})
}

func (p *PlanRunner) RunCommand(ctx context.Context, targets []*muster.Target, command string, o plan.StepOptions) ([]*muster.Result, error) {
	return p.fan(ctx, targets, "command", command, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.Runner.Command(ctx, t, command, opts)
	}), nil
}

// findFile resolves a script or upload reference with FindFile, on the
// task index's modules and the project directory.
func (p *PlanRunner) findFile(ref string, kind FileRef) (string, error) {
	var modules map[string]string
	if p.Tasks != nil {
		modules = p.Tasks.Modules
	}
	return FindFile(ref, kind, modules, p.Dir)
}

// CheckStep implements plan.Checker: a script or file must exist, a task
// must exist, take these parameters and, for noop, support it. The plan
// asks before it prints the step's "Starting" line.
func (p *PlanRunner) CheckStep(action, object string, params map[string]any, o plan.StepOptions) error {
	switch action {
	case "run_script":
		_, err := p.findFile(object, ScriptRef)
		return err
	case "upload_file":
		_, err := p.findFile(object, UploadRef)
		return err
	case "run_task":
		_, _, err := p.task(object, params, o)
		return err
	case "apply":
		_, err := manifest(params["resources"])
		return err
	}
	return nil
}

// task finds a task and validates its parameters.
func (p *PlanRunner) task(name string, params map[string]any, o plan.StepOptions) (*task.Task, map[string]any, error) {
	if p.Tasks == nil {
		return nil, nil, muster.Errorf(muster.KindInvalid, "cannot run task %s: no task index", name)
	}
	tk, err := p.Tasks.Get(name)
	if err != nil {
		return nil, nil, muster.AsError(err, muster.KindInvalid)
	}
	valid, err := tk.Metadata.Validate(tk.Name, params)
	if err != nil {
		return nil, nil, muster.AsError(err, muster.KindInvalid)
	}
	if o.Noop && !tk.Metadata.SupportsNoop {
		return nil, nil, muster.Errorf(muster.KindInvalid, "task %s does not support noop", tk.Name)
	}
	return tk, valid, nil
}

func (p *PlanRunner) RunScript(ctx context.Context, targets []*muster.Target, script string, args []string, o plan.StepOptions) ([]*muster.Result, error) {
	path, err := p.findFile(script, ScriptRef)
	if err != nil {
		return nil, err
	}
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "reading script: %w", err)
	}
	return p.fan(ctx, targets, "script", script, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.Runner.Script(ctx, t, script, content, args, opts)
	}), nil
}

func (p *PlanRunner) RunTask(ctx context.Context, targets []*muster.Target, name string, params map[string]any, o plan.StepOptions) ([]*muster.Result, error) {
	tk, valid, err := p.task(name, params, o)
	if err != nil {
		return nil, err
	}
	for _, t := range targets {
		if w := RubyWarning(tk, t); w != "" {
			p.warn(w)
		}
	}
	tr := &action.TaskRun{Task: tk, Index: p.Tasks, Params: valid, Noop: o.Noop, Secrets: tk.Metadata.SensitiveValues(valid)}
	return p.fan(ctx, targets, "task", tk.Name, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.Runner.Task(ctx, t, tr, opts)
	}), nil
}

func (p *PlanRunner) Upload(ctx context.Context, targets []*muster.Target, src, dest string, o plan.StepOptions) ([]*muster.Result, error) {
	path, err := p.findFile(src, UploadRef)
	if err != nil {
		return nil, err
	}
	archive, err := action.Pack(path)
	if err != nil {
		return nil, muster.AsError(err, muster.KindInvalid)
	}
	return p.fan(ctx, targets, "upload", src, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.Runner.Upload(ctx, t, archive, dest, opts)
	}), nil
}

func (p *PlanRunner) Download(ctx context.Context, targets []*muster.Target, src, dest string, o plan.StepOptions) ([]*muster.Result, error) {
	if !filepath.IsAbs(dest) {
		dest = filepath.Join(p.Dir, "downloads", dest) // as Bolt does for plans
	}
	return p.fan(ctx, targets, "download", src, o, func(ctx context.Context, t *muster.Target, opts action.Options) *muster.Result {
		return p.Runner.Download(ctx, t, src, dest, opts)
	}), nil
}

// WaitUntilAvailable runs a no-op on each target until it answers or the
// timeout passes, reconnecting with backoff (1 s doubling to 5 s).
func (p *PlanRunner) WaitUntilAvailable(ctx context.Context, targets []*muster.Target, timeout time.Duration) ([]*muster.Result, error) {
	opts := p.Action
	opts.RunAs = "" // a no-op needs no privileges
	return executor.Run(ctx, targets, executor.Options{Concurrency: p.concurrency()}, "wait_until_available", "", func(ctx context.Context, t *muster.Target) *muster.Result {
		deadline := time.Now().Add(timeout)
		backoff := time.Second
		for {
			attemptCtx, cancel := context.WithTimeout(ctx, min(10*time.Second, max(time.Second, time.Until(deadline))))
			res := p.Runner.Command(attemptCtx, t, "true", opts)
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
