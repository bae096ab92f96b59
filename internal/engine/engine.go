// Package engine runs one node-run (a command, script, task, plan or file
// transfer on one node) from its muster.JobSpec. It is the part of muster
// that does the work, shared by every way work arrives: the server's
// dispatcher hands it claimed runs, the CLI's plan command uses its
// PlanRunner, and the agent (next) runs its own node's runs through it
// with the local transport.
//
// The engine knows no CLI flags, no HTTP and no database: it takes a
// loaded project, an action runner (the transports) and Options, and
// returns a Bolt-shaped result. docs/architecture.md shows where it sits.
package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/project"
	"github.com/muster-run/muster/internal/target"
	"github.com/muster-run/muster/internal/task"
)

// DefaultConcurrency is how many targets one action acts on at once when
// nobody says otherwise: the CLI's --concurrency default, a server's, and
// a plan step's.
const DefaultConcurrency = 100

// Options tune how the engine runs node-runs.
type Options struct {
	// Concurrency is how many targets a plan job's step acts on at once
	// when the job does not say (default DefaultConcurrency).
	Concurrency int
	// TmpDir overrides the targets' temporary directory.
	TmpDir string
	// AllowLocal lets admins' jobs act on this machine (transport local).
	// Without it no job may: it would run as the server's user.
	AllowLocal bool
	// Guard, when set, names the lock each run holds on its target for
	// as long as its work runs (see action.Options.Guard), so that an
	// attempt orphaned by a dead server and its retry never overlap.
	// The engine appends the node's name.
	Guard string
}

// SecretOpener unseals a job's secrets (internal/secret.Box).
type SecretOpener interface {
	Open(sealed string) (map[string]string, error)
}

// Engine runs node-runs. Project, Runner and Secrets are required.
type Engine struct {
	// Project returns the project to run with; a run keeps the one it
	// started with across reloads.
	Project func() *project.Project
	Runner  *action.Runner
	// Linger, when set, keeps a node's connection open a while after its
	// run, for its next one.
	Linger  *action.Linger
	Secrets SecretOpener
	Options Options
}

// Resolve turns a target spec into node names for a job submitted by who.
// A target on this machine is refused (muster.ErrForbidden) unless local
// targets are allowed and who is an admin.
func (e *Engine) Resolve(_ context.Context, who muster.Token, spec string) ([]string, error) {
	targets, err := target.Resolve(e.Project().Inventory, []string{spec})
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, muster.Errorf(muster.KindInvalid, "no targets match %q", spec)
	}
	for _, t := range targets {
		if err := e.checkLocal(t, e.localAllowed(who)); err != nil {
			return nil, err
		}
	}
	return muster.Names(targets), nil
}

// localAllowed says whether who may act on this machine.
func (e *Engine) localAllowed(who muster.Token) bool {
	return e.Options.AllowLocal && who.Role == muster.RoleAdmin
}

// checkLocal refuses a local target unless allowed.
func (e *Engine) checkLocal(t *muster.Target, allowed bool) error {
	if t.Transport != "local" || allowed && e.Options.AllowLocal {
		return nil
	}
	if !e.Options.AllowLocal {
		return muster.Forbidden("target %s runs on the server's own machine (transport local), as the server's user; "+
			"this server refuses local targets (start it with --allow-local-targets to let admin tokens use them)", t.Name)
	}
	return muster.Forbidden("target %s runs on the server's own machine (transport local): only admin tokens may use local targets", t.Name)
}

// Prepare checks a submitted spec against the project's tasks and plans,
// moves sensitive task parameters into the spec's secrets (which the API
// seals before storing), and records whether the job may use local
// targets. Secret parameter values are JSON, decoded here.
func (e *Engine) Prepare(_ context.Context, who muster.Token, kind muster.JobKind, spec *muster.JobSpec) error {
	spec.LocalTargets = e.localAllowed(who)
	p := e.Project()
	switch kind {
	case muster.JobTask:
		tk, err := p.Tasks.Get(spec.Task)
		if err != nil {
			return err
		}
		valid, err := tk.Metadata.Validate(tk.Name, withSecretParams(spec))
		if err != nil {
			return err
		}
		spec.Params = map[string]any{}
		for k, v := range valid {
			if pm := paramOf(tk.Metadata, k); pm != nil && pm.Sensitive {
				b, _ := json.Marshal(v)
				if spec.Secrets == nil {
					spec.Secrets = map[string]string{}
				}
				spec.Secrets[muster.SecretParam(k)] = string(b)
				continue
			}
			spec.Params[k] = v
		}
		for k := range spec.Secrets {
			if name, ok := strings.CutPrefix(k, "param:"); ok && valid[name] == nil {
				delete(spec.Secrets, k)
			}
		}
	case muster.JobPlan:
		pl, err := p.Plans.Get(spec.Plan)
		if err != nil {
			return err
		}
		params := withSecretParams(spec)
		params["targets"] = "localhost" // each run sets it to its node; only its presence matters here
		if err := pl.Validate(params); err != nil {
			return err
		}
	}
	return nil
}

func paramOf(md *task.Metadata, name string) *task.Param {
	if md == nil {
		return nil
	}
	return md.Parameters[name]
}

// withSecretParams returns the spec's parameters with its "param:NAME"
// secrets merged in. A secret's value is taken as JSON when it parses,
// else as a string.
func withSecretParams(spec *muster.JobSpec) map[string]any {
	params := map[string]any{}
	for k, v := range spec.Params {
		params[k] = v
	}
	for k, v := range spec.Secrets {
		name, ok := strings.CutPrefix(k, "param:")
		if !ok {
			continue
		}
		var val any
		if err := json.Unmarshal([]byte(v), &val); err != nil {
			val = v
		}
		params[name] = val
	}
	return params
}

// Run runs one node-run and returns its Bolt-shaped result. What the
// action prints also goes to stdout and stderr as it comes (live output
// for watchers), and so do a plan's step lines and messages.
func (e *Engine) Run(ctx context.Context, r muster.Run, stdout, stderr io.Writer) *muster.Result {
	res := &muster.Result{Target: r.Node, Action: string(r.Kind)}
	fail := func(kind, format string, args ...any) *muster.Result {
		res.Error = muster.Errorf(kind, format, args...)
		return res
	}
	spec, err := muster.DecodeJobSpec(r.Spec)
	if err != nil {
		return fail(muster.KindInvalid, "run %d: %v", r.ID, err)
	}
	res.Object = spec.Object(r.Kind)
	secrets, err := e.Secrets.Open(spec.Sealed)
	if err != nil {
		return fail(muster.KindInvalid, "run %d: %v", r.ID, err)
	}
	spec.Secrets = secrets
	proj := e.Project()
	targets, err := target.Resolve(proj.Inventory, []string{r.Node})
	if err != nil || len(targets) != 1 {
		return fail(muster.KindInvalid, "node %q is no longer in the inventory: %v", r.Node, err)
	}
	t := targets[0]
	if err := e.checkLocal(t, spec.LocalTargets); err != nil {
		// The inventory may have changed since the job was accepted.
		return fail(muster.KindInvalid, "node %s: %v", r.Node, err)
	}
	if e.Linger != nil {
		e.Linger.Use(t) // its connection stays open for the node's next run, a while
		defer e.Linger.Done(ctx, t)
	}
	env := map[string]string{
		"MUSTER_JOB_ID": strconv.FormatInt(r.JobID, 10), "MUSTER_RUN_ID": strconv.FormatInt(r.ID, 10),
		"MUSTER_NODE": r.Node, "MUSTER_ATTEMPT": strconv.Itoa(r.Attempt),
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	opts := action.Options{Env: env, RunAs: spec.RunAs, SudoPassword: secrets[muster.SecretSudoPassword], TmpDir: e.Options.TmpDir,
		Stream: func(*muster.Target) (io.Writer, io.Writer) { return stdout, stderr }}
	if e.Options.Guard != "" {
		opts.Guard = e.Options.Guard + ":" + r.Node
	}
	switch r.Kind {
	case muster.JobCommand:
		return e.Runner.Command(ctx, t, spec.Command, opts)
	case muster.JobScript:
		return e.Runner.Script(ctx, t, spec.Script, spec.ScriptBody, spec.Args, opts)
	case muster.JobTask:
		tk, err := proj.Tasks.Get(spec.Task)
		if err != nil {
			return fail(muster.KindInvalid, "%v", err)
		}
		valid, err := tk.Metadata.Validate(tk.Name, withSecretParams(&spec))
		if err != nil {
			res.Error = muster.AsError(err, muster.KindInvalid)
			return res
		}
		tr := &action.TaskRun{Task: tk, Index: proj.Tasks, Params: valid, Secrets: tk.Metadata.SensitiveValues(valid)}
		return e.Runner.Task(ctx, t, tr, opts)
	case muster.JobPlan:
		return e.runPlan(ctx, proj, r, t, spec, opts, stdout)
	}
	return fail(muster.KindInvalid, "unknown job kind %q", r.Kind)
}

// runPlan runs a plan with its targets parameter set to the run's node.
// Its step lines and messages go to out, the run's live output.
func (e *Engine) runPlan(ctx context.Context, proj *project.Project, r muster.Run, t *muster.Target, spec muster.JobSpec,
	opts action.Options, out io.Writer) *muster.Result {
	res := &muster.Result{Target: r.Node, Action: "plan", Object: spec.Plan}
	p, err := proj.Plans.Get(spec.Plan)
	if err != nil {
		res.Error = muster.AsError(err, muster.KindInvalid)
		return res
	}
	params := withSecretParams(&spec)
	params["targets"] = t.Name
	// The node's guard covers one action on the node; a plan's steps act
	// on whatever targets they name, so they do not take it.
	opts.Guard = ""
	concurrency := spec.Concurrency
	if concurrency <= 0 {
		concurrency = e.Options.Concurrency
	}
	// The progress goes out live and is kept for the result, whose
	// "stdout" holds it whole (a watcher prints the tail it missed).
	var progress bytes.Buffer
	pr := &PlanRunner{Inventory: proj.Inventory, Tasks: proj.Tasks, Runner: e.Runner, Action: opts, Dir: proj.Dir,
		Concurrency: concurrency, Out: io.MultiWriter(out, &progress),
		Allow: func(t *muster.Target) error { return e.checkLocal(t, spec.LocalTargets) }}
	start := time.Now()
	pr.Say("Starting: plan %s", p.Name)
	ret, err := p.Run(ctx, pr, params, plan.Options{Concurrency: pr.concurrency(), Index: proj.Plans})
	// What the run's applies kept on targets goes, even when the run was
	// cancelled.
	cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	pr.Cleanup(cleanupCtx)
	cancel()
	pr.Say("Finished: plan %s in %s", p.Name, time.Since(start).Round(10*time.Millisecond))
	res.Value = map[string]any{"stdout": progress.String()}
	if err != nil {
		res.Error = muster.AsError(err, plan.KindPlanFailure)
		if rs, ok := res.Error.Details["result_set"].([]*muster.Result); ok {
			b, _ := json.Marshal(rs)
			res.Error.Details["result_set"] = json.RawMessage(b)
		}
		return res
	}
	res.Value["value"] = ret
	return res
}
