package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/action"
	"github.com/muster-run/muster/internal/httpapi"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/plan"
	"github.com/muster-run/muster/internal/secret"
	"github.com/muster-run/muster/internal/target"
	"github.com/muster-run/muster/internal/task"
)

// jobEngine runs queued node-runs with the same engine as the CLI: the
// server's inventory, module path and one SSH connection pool. It also
// checks submissions (prepare) against the same tasks and plans.
type jobEngine struct {
	a       *app // a quiet copy of the server's app: plan progress is not printed
	proj    atomic.Pointer[loadedProject]
	runner  *action.Runner
	linger  *action.Linger // when to close the connections runs leave open
	box     *secret.Box
	project string
	// allowLocal is --allow-local-targets: admins may run jobs on the
	// server's own machine. Without it nobody may.
	allowLocal bool
	// fake, when set, replaces every action with a sleep of this length that
	// succeeds without touching a target (muster server --backend fake:D).
	fake *time.Duration
}

// loadedProject is what the server read from its project directory. A reload
// swaps it whole; a run or a submission uses the one it started with.
type loadedProject struct {
	inv       *inventory.Inventory
	inventory string // the inventory file, "" when there is none
	tasks     *task.Index
	plans     *plan.Index
}

// resolve turns a target spec into node names, for the API. A target on
// the server's own machine (transport local: localhost, local://, or an
// inventory target so configured) is refused unless the server allows
// local targets and the caller is an admin: it would run as the server.
func (e *jobEngine) resolve(_ context.Context, who muster.Token, spec string) ([]string, error) {
	targets, err := target.Resolve(e.proj.Load().inv, []string{spec})
	if err != nil {
		return nil, err
	}
	if len(targets) == 0 {
		return nil, fmt.Errorf("no targets match %q", spec)
	}
	for _, t := range targets {
		if err := e.checkLocal(t, e.localAllowed(who)); err != nil {
			return nil, err
		}
	}
	return names(targets), nil
}

// localAllowed says whether who may act on the server's own machine.
func (e *jobEngine) localAllowed(who muster.Token) bool {
	return e.allowLocal && who.Role == muster.RoleAdmin
}

// checkLocal refuses a local target unless allowed.
func (e *jobEngine) checkLocal(t *muster.Target, allowed bool) error {
	if t.Transport != "local" || allowed {
		return nil
	}
	if !e.allowLocal {
		return httpapi.Forbidden("target %s runs on the server's own machine (transport local), as the server's user; "+
			"this server refuses local targets (start it with --allow-local-targets to let admin tokens use them)", t.Name)
	}
	return httpapi.Forbidden("target %s runs on the server's own machine (transport local): only admin tokens may use local targets", t.Name)
}

// prepare checks a submitted spec against the server's tasks and plans,
// and moves sensitive task parameters into the spec's secrets, which the
// API seals before storing. Secret parameter values are JSON, decoded here.
func (e *jobEngine) prepare(_ context.Context, who muster.Token, kind muster.JobKind, spec *muster.JobSpec) error {
	spec.LocalTargets = e.localAllowed(who)
	p := e.proj.Load()
	switch kind {
	case muster.JobTask:
		tk, err := p.tasks.Get(spec.Task)
		if err != nil {
			return err
		}
		params, err := withSecretParams(spec)
		if err != nil {
			return err
		}
		valid, err := tk.Metadata.Validate(tk.Name, params)
		if err != nil {
			return err
		}
		spec.Params = map[string]any{}
		for k, v := range valid {
			if p := paramOf(tk.Metadata, k); p != nil && p.Sensitive {
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
		pl, err := p.plans.Get(spec.Plan)
		if err != nil {
			return err
		}
		params, err := withSecretParams(spec)
		if err != nil {
			return err
		}
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
func withSecretParams(spec *muster.JobSpec) (map[string]any, error) {
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
	return params, nil
}

// execute runs one node-run and returns its Bolt-shaped result. What the
// action prints also goes to stdout and stderr as it comes (live output
// for watchers).
func (e *jobEngine) execute(ctx context.Context, r muster.Run, stdout, stderr io.Writer) *muster.Result {
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
	if e.fake != nil && *e.fake == 0 {
		res.Value = map[string]any{"fake": true}
		return res
	}
	if e.fake != nil {
		select {
		case <-time.After(*e.fake):
			res.Value = map[string]any{"fake": true}
			return res
		case <-ctx.Done():
			return fail(muster.KindCancelled, "cancelled: %v", context.Cause(ctx))
		}
	}
	secrets, err := e.box.Open(spec.Sealed)
	if err != nil {
		return fail(muster.KindInvalid, "run %d: %v", r.ID, err)
	}
	spec.Secrets = secrets
	proj := e.proj.Load()
	targets, err := target.Resolve(proj.inv, []string{r.Node})
	if err != nil || len(targets) != 1 {
		return fail(muster.KindInvalid, "node %q is no longer in the inventory: %v", r.Node, err)
	}
	t := targets[0]
	if err := e.checkLocal(t, spec.LocalTargets && e.allowLocal); err != nil {
		// The inventory may have changed since the job was accepted.
		return fail(muster.KindInvalid, "node %s: %v", r.Node, err)
	}
	e.linger.Use(t) // its connection stays open for the node's next run, a while
	defer e.linger.Done(ctx, t)
	env := map[string]string{
		"MUSTER_JOB_ID": strconv.FormatInt(r.JobID, 10), "MUSTER_RUN_ID": strconv.FormatInt(r.ID, 10),
		"MUSTER_NODE": r.Node, "MUSTER_ATTEMPT": strconv.Itoa(r.Attempt),
	}
	for k, v := range spec.Env {
		env[k] = v
	}
	opts := action.Options{Env: env, RunAs: spec.RunAs, SudoPassword: secrets[muster.SecretSudoPassword], TmpDir: e.a.flags.tmpdir,
		Stream: func(*muster.Target) (io.Writer, io.Writer) { return stdout, stderr }}
	switch r.Kind {
	case muster.JobCommand:
		return e.runner.Command(ctx, t, spec.Command, opts)
	case muster.JobScript:
		return e.runner.Script(ctx, t, spec.Script, spec.ScriptBody, spec.Args, opts)
	case muster.JobTask:
		tk, err := proj.tasks.Get(spec.Task)
		if err != nil {
			return fail(muster.KindInvalid, "%v", err)
		}
		params, _ := withSecretParams(&spec)
		valid, err := tk.Metadata.Validate(tk.Name, params)
		if err != nil {
			res.Error = muster.AsError(err, muster.KindInvalid)
			return res
		}
		tr := &action.TaskRun{Task: tk, Index: proj.tasks, Params: valid, Secrets: tk.Metadata.SensitiveValues(valid)}
		return e.runner.Task(ctx, t, tr, opts)
	case muster.JobPlan:
		return e.runPlan(ctx, proj, r, t, spec, opts)
	}
	return fail(muster.KindInvalid, "unknown job kind %q", r.Kind)
}

// runPlan runs a plan with its targets parameter set to the run's node.
func (e *jobEngine) runPlan(ctx context.Context, proj *loadedProject, r muster.Run, t *muster.Target, spec muster.JobSpec, opts action.Options) *muster.Result {
	res := &muster.Result{Target: r.Node, Action: "plan", Object: spec.Plan}
	p, err := proj.plans.Get(spec.Plan)
	if err != nil {
		res.Error = muster.AsError(err, muster.KindInvalid)
		return res
	}
	params, _ := withSecretParams(&spec)
	params["targets"] = t.Name
	pr := &planRunner{a: e.a, inv: proj.inv, tasks: proj.tasks, runner: e.runner, project: e.project, opts: opts,
		allow: func(t *muster.Target) error { return e.checkLocal(t, spec.LocalTargets && e.allowLocal) }}
	ret, err := p.Run(ctx, pr, params, plan.Options{Concurrency: e.a.flags.concurrency, Index: proj.plans})
	if err != nil {
		res.Error = muster.AsError(err, plan.KindPlanFailure)
		if rs, ok := res.Error.Details["result_set"].([]*muster.Result); ok {
			b, _ := json.Marshal(rs)
			res.Error.Details["result_set"] = json.RawMessage(b)
		}
		return res
	}
	res.Value = map[string]any{"value": plan.ToData(ret)}
	return res
}

// quietApp is a copy of a for work the server does on its own behalf:
// nothing it would print reaches the server's terminal.
func quietApp(a *app) *app {
	return &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard, flags: a.flags}
}
