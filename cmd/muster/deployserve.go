package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/deploy"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/project"
)

// The server's annealer runs the hooks (on_active, on_node_change) of the
// deployments that were applied through it, with no command line watching.
//
// Which deployments: those defined in the project's deploy/*.yaml (read
// again on every pass, with the inventory the server reloads) that have
// been applied, that is, whose name tags at least one role job of a role's
// current definition (MUSTER_DEPLOYMENT, MUSTER_ROLE, MUSTER_ROLE_DIGEST)
// in the store. A file merely present starts nothing: 'deploy apply' stays
// the only way to queue a role. A deployment applied from a file outside
// the project's deploy/ directory gets no hooks.
//
// It keeps nothing in memory that decides what to do. Each pass reads the
// jobs from the store, derives the node-roles' states from their runs and
// the hooks due from those (deploy.Hooks), and submits the hooks that no
// job tagged with the same hook key holds yet. So a hook is run once per
// node-role and role definition (on_active) or per change (on_node_change)
// across restarts and across several servers on one database: each hook
// job carries a OnceKey (the deployment, the role's digest and the hook's
// key), and the store keeps one job per key, whichever server submits it
// first. (Jobs stored before the key existed are still settled by dedupe:
// twins whose runs have not started are cancelled, the oldest kept.)
//
// The hooks run with the authority of the token that applied the role
// (the role job's creator); a revoked token's deployments get no more
// hooks.
type annealer struct {
	store   muster.Store
	hub     *events.Hub
	live    *project.Live
	prepare func(ctx context.Context, who muster.Token, kind muster.JobKind, spec *muster.JobSpec) error
	sealer  api.Sealer
	log     *slog.Logger
	// poll is the fallback: changes made by another server on the same
	// database reach this one's hub only through it.
	poll time.Duration
	// gap is the least time between two passes (a busy queue publishes
	// many job changes).
	gap time.Duration
	// hold is how far ahead a hook job is scheduled (see above).
	hold time.Duration
	// logged holds the last message logged per subject, so that a broken
	// file or a revoked token is logged once, not on every pass.
	logged map[string]string
}

const (
	annealPoll = 5 * time.Second
	annealGap  = 200 * time.Millisecond
	hookHold   = time.Second
)

// startAnnealer runs the annealer until ctx ends, in wg.
func startAnnealer(ctx context.Context, wg *sync.WaitGroup, store muster.Store, hub *events.Hub, live *project.Live,
	prepare func(context.Context, muster.Token, muster.JobKind, *muster.JobSpec) error, sealer api.Sealer, log *slog.Logger) {
	an := &annealer{store: store, hub: hub, live: live, prepare: prepare, sealer: sealer, log: log,
		poll: annealPoll, gap: annealGap, hold: hookHold, logged: map[string]string{}}
	wg.Go(func() { an.run(ctx) })
}

func (an *annealer) run(ctx context.Context) {
	sub := an.hub.Subscribe(0)
	defer sub.Close()
	tick := time.NewTicker(an.poll)
	defer tick.Stop()
	first := true
	for {
		err := an.pass(ctx)
		if first && err == nil {
			first = false
			an.log.Info("deployments: first pass done")
		}
		if err != nil && ctx.Err() == nil {
			an.once("pass", "deployments: annealing failed; trying again", "err", err)
		} else if err == nil {
			delete(an.logged, "pass")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(an.gap):
		}
		select {
		case <-ctx.Done():
			return
		case <-sub.C:
		case <-tick.C:
		}
	}
}

// once logs a warning about subject unless the same one was logged last.
func (an *annealer) once(subject, msg string, args ...any) {
	text := fmt.Sprint(append([]any{msg}, args...)...)
	if an.logged[subject] == text {
		return
	}
	an.logged[subject] = text
	an.log.Warn(msg, args...)
}

// deploymentFiles lists deploy/*.yaml and deploy/*.yml in the project.
func deploymentFiles(dir string) []string {
	var files []string
	for _, pat := range []string{"*.yaml", "*.yml"} {
		m, _ := filepath.Glob(filepath.Join(dir, "deploy", pat))
		files = append(files, m...)
	}
	sort.Strings(files)
	return files
}

// deployJob is a job of a deployment, with its tags.
type deployJob struct {
	job muster.Job
	env map[string]string
}

func (an *annealer) pass(ctx context.Context) error {
	proj := an.live.Current()
	files := deploymentFiles(proj.Dir)
	if len(files) == 0 {
		return nil
	}
	defs := map[string]*deploy.Deployment{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err == nil {
			var d *deploy.Deployment
			if d, err = deploy.Parse(f, data); err == nil {
				if other, dup := defs[d.Name]; dup {
					err = fmt.Errorf("%s: deployment %q is defined in %s too; this one is ignored", f, d.Name, other.File)
				} else {
					defs[d.Name] = d
				}
			}
		}
		if err != nil {
			an.once("file "+f, "deployments: a deployment file does not load; its hooks wait", "err", err)
		} else {
			delete(an.logged, "file "+f)
		}
	}
	if len(defs) == 0 {
		return nil
	}
	byName, err := an.deploymentJobs(ctx, defs)
	if err != nil {
		return err
	}
	var tokens map[string]muster.Token
	for _, name := range sortedKeys(defs) {
		d, jobs := defs[name], byName[name]
		p, err := deploy.NewPlan(d, nodeResolver(proj.Inventory, nil))
		if err != nil {
			an.once("plan "+name, "deployments: a deployment does not resolve; its hooks wait", "deployment", name, "err", err)
			continue
		}
		delete(an.logged, "plan "+name)
		if err := an.anneal(ctx, p, jobs, &tokens); err != nil {
			return fmt.Errorf("deployment %s: %w", name, err)
		}
	}
	return nil
}

// deploymentJobs reads every job and keeps those tagged with one of defs'
// names and a current role digest, oldest first. The store has no filter
// by tag, so this reads every page of the job list.
func (an *annealer) deploymentJobs(ctx context.Context, defs map[string]*deploy.Deployment) (map[string][]deployJob, error) {
	out := map[string][]deployJob{}
	var before int64
	for {
		page, err := an.store.ListJobs(ctx, muster.JobFilter{BeforeID: before, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, j := range page {
			var spec struct {
				Env map[string]string `json:"env"`
			}
			if json.Unmarshal(j.Spec, &spec) != nil {
				continue
			}
			d := defs[spec.Env[deploy.EnvDeployment]]
			if d == nil {
				continue
			}
			if r := d.Role(spec.Env[deploy.EnvRole]); r == nil || spec.Env[deploy.EnvDigest] != r.Digest() {
				continue
			}
			out[d.Name] = append(out[d.Name], deployJob{job: j, env: spec.Env})
		}
		if len(page) < 1000 {
			break
		}
		before = page[len(page)-1].ID
	}
	for _, js := range out {
		slices.Reverse(js)
	}
	return out, nil
}

// anneal submits the hooks due for one applied deployment.
func (an *annealer) anneal(ctx context.Context, p *deploy.Plan, jobs []deployJob, tokens *map[string]muster.Token) error {
	runs := map[string]deploy.Run{}
	hookJobs := map[string][]deployJob{} // hook key -> its jobs, oldest first
	applier := map[string]string{}       // role -> who applied its newest job
	for _, dj := range jobs {
		if dj.env[deploy.EnvHook] != "" {
			for _, node := range dj.job.Targets {
				k := deploy.HookKey(dj.env, node)
				hookJobs[k] = append(hookJobs[k], dj)
			}
			continue
		}
		if !dj.job.CancelledAt.IsZero() {
			continue
		}
		role := dj.env[deploy.EnvRole]
		applier[role] = dj.job.CreatedBy
		rs, err := an.store.ListRuns(ctx, muster.RunFilter{JobID: dj.job.ID, Limit: max(1000, len(dj.job.Targets))})
		if err != nil {
			return err
		}
		for _, r := range rs {
			if p.Has(role, r.Node) {
				runs[deploy.NodeRole{Role: role, Node: r.Node}.Key()] = deploy.Run{
					JobID: dj.job.ID, RunID: r.ID, State: r.State, Error: r.Error,
					CreatedAt: r.CreatedAt, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt,
				}
			}
		}
	}
	if len(applier) == 0 {
		return nil // not applied: a file merely present starts nothing
	}
	if err := an.dedupe(ctx, hookJobs); err != nil {
		return err
	}
	hooks := deploy.Hooks(p, runs, func(k string) bool { return len(hookJobs[k]) > 0 })
	for _, h := range hooks {
		if *tokens == nil {
			ts, err := an.store.ListTokens(ctx)
			if err != nil {
				return err
			}
			*tokens = map[string]muster.Token{}
			for _, t := range ts {
				if t.RevokedAt.IsZero() {
					(*tokens)[t.Name] = t
				}
			}
		}
		name := applier[h.Role]
		who, ok := (*tokens)[name]
		if !ok || who.Role == muster.RoleViewer {
			an.once("token "+p.Deployment.Name+"/"+h.Role, "deployments: hooks not run: the token that applied the role is revoked or may not submit jobs",
				"deployment", p.Deployment.Name, "role", h.Role, "token", name)
			continue
		}
		delete(an.logged, "token "+p.Deployment.Name+"/"+h.Role)
		if err := an.submitHook(ctx, p, h, who); err != nil {
			return fmt.Errorf("role %s, hook %s on %s: %w", h.Role, h.Name, h.Node, err)
		}
	}
	return nil
}

// submitHook queues one hook on its node as who, as the API would
// (checked against the project's tasks and plans, secrets sealed), held
// an.hold ahead so that a twin coalesces.
func (an *annealer) submitHook(ctx context.Context, p *deploy.Plan, h deploy.Hook, who muster.Token) error {
	r := p.Deployment.Role(h.Role)
	act := r.OnActive
	if h.Name == deploy.HookOnNodeChange {
		act = r.OnNodeChange
	}
	extra := map[string]string{deploy.EnvHook: h.Name}
	for k, v := range h.Env {
		extra[k] = v
	}
	spec := tagged(*act, p, r, extra)
	if an.prepare != nil {
		if err := an.prepare(ctx, who, act.Kind, &spec); err != nil {
			return err
		}
	}
	if len(spec.Secrets) > 0 {
		if an.sealer == nil {
			return errors.New("the hook has secrets and this server has no secret key")
		}
		sealed, err := an.sealer.Seal(spec.Secrets)
		if err != nil {
			return err
		}
		spec.Secrets, spec.Sealed = nil, sealed
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	// The store keeps one job per key, whichever server submits it first.
	once := "deploy-hook:" + p.Deployment.Name + "|" + spec.Env[deploy.EnvDigest] + "|" + h.Key()
	job := muster.Job{Kind: act.Kind, Spec: raw, Targets: []string{h.Node}, Priority: r.Priority,
		RunAt: time.Now().Add(an.hold), OnLeaseExpiry: muster.LeaseRetry, CreatedBy: who.Name, OnceKey: once}
	if err := job.Validate(); err != nil {
		return err
	}
	res, err := an.store.SubmitJob(ctx, job)
	if err != nil {
		return err
	}
	if res.Existing { // another server (or an earlier pass) queued it
		return nil
	}
	detail, _ := json.Marshal(map[string]any{"deployment": p.Deployment.Name, "role": h.Role, "hook": h.Name, "node": h.Node,
		"changed": h.Env, "coalesced": len(res.Coalesced) > 0})
	_ = an.store.Audit(ctx, muster.AuditEntry{Actor: who.Name, Role: who.Role, Action: "deploy.hook",
		Object: fmt.Sprintf("job/%d", res.Job.ID), Remote: "annealer", Detail: string(detail)})
	an.hub.Publish(res.Job.ID)
	an.log.Info("deployment hook queued", "deployment", p.Deployment.Name, "role", h.Role, "hook", h.Name, "node", h.Node,
		"job", res.Job.ID, "coalesced", len(res.Coalesced) > 0)
	return nil
}

// dedupe cancels, for each hook key held by several jobs with separate
// runs (twins submitted by two annealers at once), the newer twins whose
// run has not started; the oldest job stays. Every annealer settles on the
// same one.
func (an *annealer) dedupe(ctx context.Context, hookJobs map[string][]deployJob) error {
	for k, js := range hookJobs {
		live := slices.DeleteFunc(slices.Clone(js), func(dj deployJob) bool { return !dj.job.CancelledAt.IsZero() })
		if len(live) < 2 {
			continue
		}
		node := k
		runOf := func(dj deployJob) (muster.Run, error) {
			for _, t := range dj.job.Targets {
				if deploy.HookKey(dj.env, t) == node {
					rs, err := an.store.ListRuns(ctx, muster.RunFilter{JobID: dj.job.ID, Node: t, Limit: 1})
					if err != nil || len(rs) == 0 {
						return muster.Run{}, err
					}
					return rs[0], nil
				}
			}
			return muster.Run{}, nil
		}
		first, err := runOf(live[0])
		if err != nil {
			return err
		}
		for _, dj := range live[1:] {
			r, err := runOf(dj)
			if err != nil {
				return err
			}
			if r.ID == 0 || r.ID == first.ID || (r.State != muster.RunScheduled && r.State != muster.RunPending) || len(dj.job.Targets) != 1 {
				continue
			}
			if _, err := an.store.CancelJob(ctx, dj.job.ID); err != nil {
				return err
			}
			an.hub.Publish(dj.job.ID)
			an.log.Info("deployment hook submitted twice: the newer twin is cancelled", "hook", k, "job", dj.job.ID, "kept", live[0].job.ID)
		}
	}
	return nil
}
