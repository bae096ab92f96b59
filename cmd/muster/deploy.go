package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/deploy"
	"github.com/muster-run/muster/internal/inventory"
	"github.com/muster-run/muster/internal/target"
)

// deployFlags are the options of the deploy commands.
type deployFlags struct {
	aliveWithin time.Duration
	watch       bool
	interval    time.Duration
}

func (a *app) deployCommand() *cobra.Command {
	var cf clientFlags
	var df deployFlags
	planCmd := &cobra.Command{
		Use: "plan FILE|NAME", Short: "Show a deployment's node-roles and their order, without running anything",
		Example: `  muster deploy plan deploy/web.yaml
  muster deploy plan web --format json`,
		Args: exactArgs(1, "one deployment FILE (or NAME, for deploy/NAME.yaml in the project)"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			p, err := a.deployPlan(c, args[0])
			if err != nil {
				return err
			}
			return a.printDeployPlan(p)
		},
	}
	applyCmd := &cobra.Command{
		Use: "apply FILE|NAME", Short: "Commit a deployment: queue one job per role, in dependency order",
		Example: `  muster deploy apply deploy/web.yaml
  muster deploy apply web --watch`,
		Args: exactArgs(1, "one deployment FILE (or NAME, for deploy/NAME.yaml in the project)"),
		RunE: func(c *cobra.Command, args []string) error {
			return a.deployApply(c, &cf, &df, args[0], "")
		},
	}
	statusCmd := &cobra.Command{
		Use: "status NAME|FILE", Short: "Show a deployment's roles and node-roles, with their states and times",
		Args: exactArgs(1, "one deployment NAME (deploy/NAME.yaml in the project) or FILE"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			p, targets, err := a.deployPlanTargets(c, args[0])
			if err != nil {
				return err
			}
			cl, err := cf.client()
			if err != nil {
				return err
			}
			cur, err := currentDeployment(c.Context(), cl, p)
			if err != nil {
				return apiError(err)
			}
			alive, err := aliveFunc(c.Context(), cl, df.aliveWithin, unreachableSSH(c.Context(), targets))
			if err != nil {
				return apiError(err)
			}
			st := deploy.NewStatus(p, cur.runs, alive)
			if err := a.printDeployStatus(st); err != nil {
				return err
			}
			if st.Counts[deploy.Error] > 0 {
				return errFailedRun
			}
			return nil
		},
	}
	retryCmd := &cobra.Command{
		Use:   "retry NAME|FILE [NODE]",
		Short: "Re-anneal: retry failed node-roles (on NODE only, if given) and submit the node-roles not yet queued",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("'%s' needs a deployment NAME (or FILE) and optionally a NODE", c.CommandPath())
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			node := ""
			if len(args) == 2 {
				node = args[1]
			}
			return a.deployApply(c, &cf, &df, args[0], retryAll(node))
		},
	}
	for _, c := range []*cobra.Command{statusCmd, applyCmd, retryCmd} {
		c.Flags().DurationVar(&df.aliveWithin, "alive-within", 30*time.Minute,
			"a pull node whose agent has not checked in for this long is not alive: its node-roles are skipped")
	}
	for _, c := range []*cobra.Command{applyCmd, retryCmd} {
		c.Flags().BoolVar(&df.watch, "watch", false, "follow the deployment until it settles and the hooks the server queues for it have run")
		c.Flags().DurationVar(&df.interval, "interval", time.Second, "with --watch, how often to read the deployment's state")
	}
	g := group("deploy", "Deployments: roles bound to nodes, converged in dependency order", planCmd, applyCmd, statusCmd, retryCmd)
	g.Long = `A deployment file (YAML; deploy/NAME.yaml in the project, read again by
every command) binds roles to nodes. Each role runs a command, task or plan
on its nodes, after the roles it requires: on the same node (the default)
or on all of their nodes (scope: any).

'apply' queues one job per role on the server (split by how its nodes
depend), each after the jobs of the roles it requires, so the server runs
each node-role only once what it requires is active, and a failure blocks
only what depends on it. Each node-role's state (proposed, blocked, todo,
transition, active, error, skipped) comes from its run. Applying an
unchanged deployment again submits nothing; a changed role is queued again.
A pull node whose agent is silent past --alive-within, and an SSH target
whose port does not answer (probed from where the command runs), are
skipped until they return ('deploy retry').

The jobs carry MUSTER_DEPLOYMENT, MUSTER_ROLE and MUSTER_ROLE_DIGEST in
their environment. The server runs the hooks, with no command watching, for
the deployments applied from its project's deploy/ directory: on_active once
per node-role and role definition, and on_node_change on a role's active
nodes when a role it requires reached active or error on another node
(MUSTER_CHANGED_ROLE, _NODE, _STATE and _RUN say which). Hook jobs are
tagged with MUSTER_HOOK, so they run once, across restarts and servers.`
	cf.register(g)
	return g
}

type retryAll string

// deployFile finds a deployment: a file path, else deploy/NAME.yaml (or
// .yml) in the project.
func (a *app) deployFile(arg string) (string, error) {
	if fi, err := os.Stat(arg); err == nil && !fi.IsDir() {
		return arg, nil
	}
	if strings.ContainsAny(arg, "/.") {
		return "", inputError{fmt.Errorf("deployment %s: no such file", arg)}
	}
	dir, err := a.projectDir()
	if err != nil {
		return "", err
	}
	for _, ext := range []string{".yaml", ".yml"} {
		f := filepath.Join(dir, "deploy", arg+ext)
		if _, err := os.Stat(f); err == nil {
			return f, nil
		}
	}
	return "", inputError{fmt.Errorf("deployment %q: no file %s in the project", arg, filepath.Join(dir, "deploy", arg+".yaml"))}
}

// deployPlan reads the deployment and resolves its nodes through the
// project's inventory.
func (a *app) deployPlan(c *cobra.Command, arg string) (*deploy.Plan, error) {
	p, _, err := a.deployPlanTargets(c, arg)
	return p, err
}

// deployPlanTargets is deployPlan with the resolved targets by name.
func (a *app) deployPlanTargets(c *cobra.Command, arg string) (*deploy.Plan, map[string]*muster.Target, error) {
	file, err := a.deployFile(arg)
	if err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, nil, inputError{err}
	}
	d, err := deploy.Parse(file, data)
	if err != nil {
		return nil, nil, inputError{err}
	}
	inv, err := a.loadInventory(c)
	if err != nil {
		return nil, nil, err
	}
	targets := map[string]*muster.Target{}
	p, err := deploy.NewPlan(d, nodeResolver(inv, targets))
	if err != nil {
		return nil, nil, inputError{err}
	}
	return p, targets, nil
}

// nodeResolver resolves a deployment's node selectors through inv, into
// node names, keeping each target in keep when it is not nil.
func nodeResolver(inv *inventory.Inventory, keep map[string]*muster.Target) func(specs []string) ([]string, error) {
	return func(specs []string) ([]string, error) {
		ts, err := target.Resolve(inv, specs)
		if err != nil {
			return nil, err
		}
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = t.Name
			if keep != nil {
				keep[t.Name] = t
			}
		}
		return names, nil
	}
}

// sshProbeTimeout bounds each SSH target's reachability probe.
const sshProbeTimeout = 3 * time.Second

// unreachableSSH probes the SSH port of every target that is reached over
// SSH (TCP connect, from where the command runs, 64 at once) and returns
// the names of those that did not answer: not alive, so their node-roles
// are skipped until they are back ('deploy retry').
func unreachableSSH(ctx context.Context, targets map[string]*muster.Target) map[string]bool {
	var mu sync.Mutex
	down := map[string]bool{}
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for name, t := range targets {
		if t.Transport != "ssh" || t.Host == "" {
			continue
		}
		port := t.Port
		if port == 0 {
			port = 22
		}
		addr := net.JoinHostPort(t.Host, strconv.Itoa(port))
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			d := net.Dialer{Timeout: sshProbeTimeout}
			conn, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				conn.Close()
				return
			}
			mu.Lock()
			down[name] = true
			mu.Unlock()
		})
	}
	wg.Wait()
	return down
}

func (a *app) printDeployPlan(p *deploy.Plan) error {
	all := map[string][]string{}
	maps.Copy(all, p.Nodes)
	groups := p.Groups(all)
	if a.flags.format == "json" {
		return a.printJSON(map[string]any{
			"name": p.Deployment.Name, "file": p.Deployment.File, "waves": p.Waves,
			"node_roles": p.NodeRoles, "jobs": groups,
		})
	}
	fmt.Fprintf(a.stdout, "Deployment %s (%s): %d role(s), %d node-role(s), all proposed\n",
		p.Deployment.Name, p.Deployment.File, len(p.Deployment.Roles), len(p.NodeRoles))
	for w, roles := range p.Waves {
		fmt.Fprintf(a.stdout, "Wave %d:\n", w+1)
		for _, role := range roles {
			r := p.Deployment.Role(role)
			req := ""
			for i, q := range r.Requires {
				if i == 0 {
					req = " after "
				} else {
					req += ", "
				}
				req += q.Role
				if q.Scope == deploy.ScopeAny {
					req += " (all nodes)"
				}
			}
			fmt.Fprintf(a.stdout, "  %s: %s %q on %d node(s)%s\n", role, r.Run.Kind, jobObject(r.Run), len(p.Nodes[role]), req)
			fmt.Fprintf(a.stdout, "    %s\n", strings.Join(p.Nodes[role], ", "))
		}
	}
	fmt.Fprintf(a.stdout, "Jobs to queue on apply: %d\n", len(groups))
	for _, g := range groups {
		line := fmt.Sprintf("  %s on %s", g.Role, strings.Join(g.Nodes, ", "))
		for i, d := range g.Deps {
			if i == 0 {
				line += ": after "
			} else {
				line += ", "
			}
			line += d.Role
			if d.Each {
				line += " (same node)"
			} else {
				line += " (all nodes)"
			}
		}
		fmt.Fprintln(a.stdout, line)
	}
	return nil
}

func jobObject(act deploy.Action) string {
	switch act.Kind {
	case muster.JobTask:
		return act.Spec.Task
	case muster.JobPlan:
		return act.Spec.Plan
	}
	return act.Spec.Command
}

// deployState is what the server holds of a deployment: its current jobs
// (those of the roles as they are defined now) and the runs serving its
// node-roles, and the hooks already run.
type deployState struct {
	jobs  map[string][]int64     // role -> current job ids, oldest first
	runs  map[string]deploy.Run  // NodeRole.Key() -> newest run
	hooks map[string]bool        // hookKey -> submitted
	views map[int64]*api.JobView // every current job
}

// currentDeployment reads the deployment's jobs from the server: the jobs
// tagged with its name whose role digest is the role's current one.
func currentDeployment(ctx context.Context, cl *api.Client, p *deploy.Plan) (*deployState, error) {
	ds := &deployState{jobs: map[string][]int64{}, runs: map[string]deploy.Run{}, hooks: map[string]bool{}, views: map[int64]*api.JobView{}}
	var before int64
	var mine []api.JobView
	for {
		page, err := cl.ListJobs(ctx, api.ListJobsOptions{Before: before, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, j := range page.Jobs {
			if j.Spec.Env[deploy.EnvDeployment] == p.Deployment.Name {
				mine = append(mine, j)
			}
		}
		if page.NextBefore == 0 {
			break
		}
		before = page.NextBefore
	}
	// Oldest first, so a newer job's run wins.
	for i := len(mine) - 1; i >= 0; i-- {
		j := mine[i]
		env := j.Spec.Env
		r := p.Deployment.Role(env[deploy.EnvRole])
		if r == nil || env[deploy.EnvDigest] != r.Digest() || j.State == muster.JobCancelled {
			continue
		}
		runs, err := cl.Runs(ctx, j.ID, api.RunsOptions{})
		if err != nil {
			return nil, err
		}
		if h := env[deploy.EnvHook]; h != "" {
			for _, rv := range runs {
				ds.hooks[deploy.HookKey(env, rv.Target)] = true
			}
			continue
		}
		ds.jobs[r.Name] = append(ds.jobs[r.Name], j.ID)
		ds.views[j.ID] = &mine[i]
		for _, rv := range runs {
			if !p.Has(r.Name, rv.Target) {
				continue
			}
			ds.runs[deploy.NodeRole{Role: r.Name, Node: rv.Target}.Key()] = deploy.Run{
				JobID: j.ID, RunID: rv.ID, State: rv.State, Error: rv.Error,
				CreatedAt: rv.CreatedAt, StartedAt: rv.StartedAt, FinishedAt: rv.FinishedAt,
			}
		}
	}
	return ds, nil
}

// aliveFunc says which nodes are alive: every node is, but a pull node
// (enrolled and signed) whose agent is silent past within, and an SSH
// target in down (unreachableSSH).
func aliveFunc(ctx context.Context, cl *api.Client, within time.Duration, down map[string]bool) (func(string) bool, error) {
	last := map[string]time.Time{}
	after := ""
	for {
		page, err := cl.ListNodes(ctx, api.ListNodesOptions{State: muster.NodeSigned, After: after, Limit: 1000})
		if err != nil {
			var ae *api.APIError
			if errors.As(err, &ae) && ae.Status == 403 {
				return func(string) bool { return true }, nil // a viewer without node access: assume alive
			}
			return nil, err
		}
		for _, n := range page.Nodes {
			last[n.Certname] = n.LastCheckIn
		}
		if page.NextAfter == "" {
			break
		}
		after = page.NextAfter
	}
	now := time.Now()
	return func(node string) bool {
		t, pull := last[node]
		return !down[node] && (!pull || deploy.Alive(t, now, within))
	}, nil
}
