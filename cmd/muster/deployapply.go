package main

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/deploy"
)

// deployApply anneals a deployment: it retries failed node-roles (retry
// only: node "" for all), then queues the node-roles that have no run yet
// and whose nodes are alive, each role's jobs after the jobs of the roles
// it requires. retry is "" for apply.
func (a *app) deployApply(c *cobra.Command, cf *clientFlags, df *deployFlags, arg string, retry retryAll) error {
	if err := a.checkFormat(); err != nil {
		return err
	}
	p, targets, err := a.deployPlanTargets(c, arg)
	if err != nil {
		return err
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	ctx := c.Context()
	cur, err := currentDeployment(ctx, cl, p)
	if err != nil {
		return apiError(err)
	}
	down := unreachableSSH(ctx, targets) // an SSH target that does not answer is not alive either
	alive, err := aliveFunc(ctx, cl, df.aliveWithin, down)
	if err != nil {
		return apiError(err)
	}
	isRetry := c.Name() == "retry"
	node := string(retry)
	if node != "" && !hasNode(p.NodeRoles, node) {
		return inputError{fmt.Errorf("node %q has no role in deployment %s", node, p.Deployment.Name)}
	}
	report := map[string]any{"name": p.Deployment.Name}
	var retried []string
	if isRetry {
		// Retry each job's failed runs (the blocked runs after them go
		// back to waiting).
		seen := map[string]bool{}
		for _, nr := range p.NodeRoles {
			r, ok := cur.runs[nr.Key()]
			if !ok || (node != "" && nr.Node != node) || deploy.FromRun(r.State) != deploy.Error {
				continue
			}
			k := fmt.Sprintf("%d|%s", r.JobID, nr.Node)
			if seen[k] {
				continue
			}
			seen[k] = true
			if _, err := cl.Retry(ctx, r.JobID, nr.Node); err != nil {
				return apiError(fmt.Errorf("retry %s on %s (job %d): %w", nr.Role, nr.Node, r.JobID, err))
			}
			retried = append(retried, nr.Key())
		}
		report["retried"] = retried
	}
	candidates, present := map[string]bool{}, map[string]bool{}
	var skipped []string
	for _, nr := range p.NodeRoles {
		k := nr.Key()
		switch {
		case cur.runs[k].JobID != 0:
			present[k] = true
		case node != "" && nr.Node != node:
		case !alive(nr.Node):
			skipped = append(skipped, k)
		default:
			candidates[k] = true
		}
	}
	want, held := p.Select(candidates, present)
	groups := p.Groups(want)
	var submitted []map[string]any
	for _, g := range groups {
		id, err := submitGroup(ctx, cl, p, cur, g)
		if err != nil {
			return err
		}
		submitted = append(submitted, map[string]any{"job": id, "role": g.Role, "nodes": g.Nodes})
	}
	report["submitted"] = submitted
	report["unchanged"] = len(present)
	report["skipped"] = skipped
	report["held"] = held
	if a.flags.format == "json" && !df.watch {
		return a.printJSON(report)
	}
	out := a.stdout
	if a.flags.format == "json" {
		out = a.stderr
	}
	if len(retried) > 0 {
		fmt.Fprintf(out, "Retried %d failed node-role(s): %s\n", len(retried), strings.Join(retried, ", "))
	}
	switch {
	case len(submitted) == 0 && len(retried) == 0:
		fmt.Fprintf(out, "Deployment %s: nothing to queue (%d node-role(s) already queued or done)\n", p.Deployment.Name, len(present))
	case len(submitted) > 0:
		n := 0
		for _, nodes := range want {
			n += len(nodes)
		}
		fmt.Fprintf(out, "Deployment %s: queued %d job(s) for %d node-role(s)", p.Deployment.Name, len(submitted), n)
		if len(present) > 0 {
			fmt.Fprintf(out, "; %d unchanged", len(present))
		}
		fmt.Fprintln(out)
		for _, s := range submitted {
			fmt.Fprintf(out, "  job %d: %s on %s\n", s["job"], s["role"], strings.Join(s["nodes"].([]string), ", "))
		}
	}
	if len(skipped) > 0 {
		fmt.Fprintf(out, "Skipped (not alive): %s; 'muster deploy retry %s' queues them once they are back\n",
			strings.Join(skipped, ", "), p.Deployment.Name)
	}
	for _, k := range sortedKeys(held) {
		fmt.Fprintf(out, "Held: %s %s\n", k, held[k])
	}
	if !df.watch {
		fmt.Fprintf(out, "Follow it with: muster deploy status %s\n", p.Deployment.Name)
		return nil
	}
	return a.watchDeployment(ctx, cl, p, df, down)
}

func hasNode(nrs []deploy.NodeRole, node string) bool {
	for _, nr := range nrs {
		if nr.Node == node {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// tagged returns the action's spec with the deployment's tags in its
// environment.
func tagged(act deploy.Action, p *deploy.Plan, r *deploy.Role, extra map[string]string) muster.JobSpec {
	spec := act.Spec
	spec.Env = map[string]string{}
	maps.Copy(spec.Env, act.Spec.Env)
	spec.Env[deploy.EnvDeployment] = p.Deployment.Name
	spec.Env[deploy.EnvRole] = r.Name
	spec.Env[deploy.EnvDigest] = r.Digest()
	maps.Copy(spec.Env, extra)
	return spec
}

// submitGroup queues one job of a role, after the current jobs of the
// roles it requires, and records it in cur.
func submitGroup(ctx context.Context, cl *api.Client, p *deploy.Plan, cur *deployState, g deploy.Group) (int64, error) {
	r := p.Deployment.Role(g.Role)
	var after, afterNode []int64
	for _, d := range g.Deps {
		if d.Each {
			afterNode = append(afterNode, cur.jobs[d.Role]...)
		} else {
			after = append(after, cur.jobs[d.Role]...)
		}
	}
	req := api.SubmitRequest{
		Kind: r.Run.Kind, Targets: api.Targets{Nodes: g.Nodes}, Spec: tagged(r.Run, p, r, nil),
		Priority: r.Priority, Retries: r.Retries, OnLeaseExpiry: muster.LeaseRetry,
		After: after, AfterNode: afterNode,
	}
	res, err := cl.Submit(ctx, req)
	if err != nil {
		return 0, apiError(fmt.Errorf("deployment %s, role %s: %w", p.Deployment.Name, g.Role, err))
	}
	cur.jobs[g.Role] = append(cur.jobs[g.Role], res.Job.ID)
	return res.Job.ID, nil
}

// hookWait is how long a watch waits, once the node-roles have settled,
// for the server to queue the hooks due (it may not anneal this
// deployment: one applied from a file outside its project's deploy/).
const hookWait = time.Minute

// watchDeployment follows the deployment until it settles and the hooks
// due have been queued by the server's annealer (deployserve.go) and have
// run, reporting them as they appear. The exit code says how it went: 0
// all active, 1 otherwise.
func (a *app) watchDeployment(ctx context.Context, cl *api.Client, p *deploy.Plan, df *deployFlags, down map[string]bool) error {
	var seen map[string]bool
	var waitingSince time.Time
	for {
		cur, err := currentDeployment(ctx, cl, p)
		if err != nil {
			return apiError(err)
		}
		alive, err := aliveFunc(ctx, cl, df.aliveWithin, down) // SSH targets probed once, at the start
		if err != nil {
			return apiError(err)
		}
		st := deploy.NewStatus(p, cur.runs, alive)
		if seen == nil {
			seen = cur.hooks // reported before this watch: not news
		}
		for _, k := range sortedKeys(cur.hooks) {
			if !seen[k] {
				fmt.Fprintf(a.stderr, "Hook queued by the server: %s\n", k)
			}
		}
		seen = cur.hooks
		due := deploy.Hooks(p, cur.runs, func(k string) bool { return cur.hooks[k] })
		done := st.Settled() && !hooksRunning(ctx, cl, p)
		if done && len(due) > 0 {
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			}
			if time.Since(waitingSince) < hookWait {
				done = false
			} else {
				var keys []string
				for _, h := range due {
					keys = append(keys, h.Key())
				}
				fmt.Fprintf(a.stderr, "warning: the server did not queue these hooks (it runs them for the deployments in its project's deploy/ directory): %s\n",
					strings.Join(keys, ", "))
			}
		}
		if done {
			if err := a.printDeployStatus(st); err != nil {
				return err
			}
			if st.Counts[deploy.Active] != len(p.NodeRoles) {
				return errFailedRun
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(df.interval):
		}
	}
}

// hooksRunning reports whether a hook job of the deployment is still
// queued or running (the watch waits for them).
func hooksRunning(ctx context.Context, cl *api.Client, p *deploy.Plan) bool {
	for _, state := range []muster.JobState{muster.JobPending, muster.JobRunning, muster.JobScheduled} {
		page, err := cl.ListJobs(ctx, api.ListJobsOptions{State: state, Limit: 1000})
		if err != nil {
			return true
		}
		for _, j := range page.Jobs {
			if j.Spec.Env[deploy.EnvDeployment] == p.Deployment.Name && j.Spec.Env[deploy.EnvHook] != "" {
				return true
			}
		}
	}
	return false
}

func (a *app) printDeployStatus(st deploy.Status) error {
	if a.flags.format == "json" {
		return a.printJSON(st)
	}
	w := a.stdout
	fmt.Fprintf(w, "Deployment %s (%s)\n", st.Name, st.File)
	for _, rs := range st.Roles {
		req := ""
		if len(rs.Requires) > 0 {
			req = ", requires " + strings.Join(rs.Requires, ", ")
		}
		fmt.Fprintf(w, "  %s (wave %d%s): %s\n", rs.Role, rs.Wave+1, req, countsText(rs.Counts))
		for _, ns := range rs.Nodes {
			line := fmt.Sprintf("    %-24s %s", ns.Node, ns.State)
			if ns.State == deploy.Skipped {
				line = fmt.Sprintf("    %-24s skipped (not alive)", ns.Node)
			}
			if r := ns.Run; r != nil {
				line += fmt.Sprintf("  job %d run %d", r.JobID, r.RunID)
				switch {
				case !r.FinishedAt.IsZero():
					line += "  finished " + r.FinishedAt.Local().Format(time.RFC3339)
					if !r.StartedAt.IsZero() {
						line += fmt.Sprintf(" (%s)", r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond))
					}
				case !r.StartedAt.IsZero():
					line += "  started " + r.StartedAt.Local().Format(time.RFC3339)
				default:
					line += "  queued " + r.CreatedAt.Local().Format(time.RFC3339)
				}
			}
			if ns.Reason != "" && ns.State != deploy.Skipped {
				line += "  (" + oneLine(ns.Reason, 120) + ")"
			}
			fmt.Fprintln(w, line)
		}
	}
	fmt.Fprintf(w, "Total: %s\n", countsText(st.Counts))
	return nil
}

func countsText(c map[deploy.State]int) string {
	var parts []string
	for _, s := range []deploy.State{deploy.Active, deploy.Transition, deploy.Todo, deploy.Blocked, deploy.Error, deploy.Skipped, deploy.Proposed} {
		if c[s] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", s, c[s]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
