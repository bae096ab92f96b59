package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/task"
)

// submitFlags are the queue options of 'muster job submit'.
type submitFlags struct {
	priority      int
	at            string
	every         time.Duration
	continuous    bool
	retries       int
	timeout       time.Duration
	onLeaseExpiry string
	params        string
	watch         bool
	stream        bool
	concurrency   int
	pull          bool
	after         []string
	afterEach     bool
	afterNode     []string
	change        changeFlags // jobsubmit_change.go
}

func (a *app) jobSubmitCommand(cf *clientFlags) *cobra.Command {
	var sf submitFlags
	kinds := []*cobra.Command{
		{
			Use: "command COMMAND -t TARGETS", Short: "Queue a shell command",
			Example: `  muster job submit command 'systemctl restart nginx' -t web --run-as root --retries 2
  muster job submit command 'puppet agent -t' -t all --continuous --timeout 30m
  muster job submit command 'puppet agent -t --noop' -t 'web*.example.com' --pull --watch
  muster job submit command 'systemctl restart app' -t web --after 41 --after-each`,
			Args: exactArgs(1, "one COMMAND (quote it)"),
			RunE: func(c *cobra.Command, args []string) error {
				line, err := a.commandText(args[0])
				if err != nil {
					return err
				}
				return a.submitJob(c, cf, &sf, muster.JobCommand, muster.JobSpec{Command: line})
			},
		},
		scriptKind(func(c *cobra.Command, script string, args []string) error {
			body, err := os.ReadFile(script)
			if err != nil {
				return inputError{fmt.Errorf("cannot read script: %w", err)}
			}
			return a.submitJob(c, cf, &sf, muster.JobScript, muster.JobSpec{Script: script, ScriptBody: body, Args: args})
		}),
		{
			Use: "task TASK [PARAM=VALUE ...] -t TARGETS", Short: "Queue a Bolt task from the server's module path",
			Example: `  muster job submit task package action=status name=nginx -t web
  muster job submit task mymod::deploy --params @params.json -t 'app*' --priority 10`,
			Args: func(c *cobra.Command, args []string) error {
				if len(args) < 1 {
					return usagef("'%s' needs a TASK name", c.CommandPath())
				}
				return nil
			},
			RunE: func(c *cobra.Command, args []string) error {
				params, err := a.jobParams(args[0], args[1:], sf.params, true)
				if err != nil {
					return err
				}
				return a.submitJob(c, cf, &sf, muster.JobTask, muster.JobSpec{Task: args[0], Params: params})
			},
		},
		{
			Use: "plan PLAN [PARAM=VALUE ...] -t TARGETS", Short: "Queue a plan, run once per target with targets=<that target>",
			Example: `  muster job submit plan ops::rolling_reboot -t web --at 2026-12-01T02:00:00Z`,
			Args: func(c *cobra.Command, args []string) error {
				if len(args) < 1 {
					return usagef("'%s' needs a PLAN name", c.CommandPath())
				}
				return nil
			},
			RunE: func(c *cobra.Command, args []string) error {
				params, err := a.jobParams(args[0], args[1:], sf.params, false)
				if err != nil {
					return err
				}
				return a.submitJob(c, cf, &sf, muster.JobPlan, muster.JobSpec{Plan: args[0], Params: params, Concurrency: sf.concurrency})
			},
		},
	}
	for _, k := range kinds {
		a.flags.registerTargets(k)
		fl := k.Flags()
		fl.IntVar(&sf.priority, "priority", 0, "higher runs first (may be negative)")
		fl.StringVar(&sf.at, "at", "", "not before this time: RFC 3339 (2026-12-01T02:00:00Z), HH:MM (next occurrence, local time) or +DURATION (+10m)")
		fl.DurationVar(&sf.every, "every", 0, "recurring: each node runs again this long after its previous run was due")
		fl.BoolVar(&sf.continuous, "continuous", false, "each node's next run goes to the back of the queue as soon as one ends, until cancelled")
		fl.IntVar(&sf.retries, "retries", 0, "extra attempts after a failure, with exponential backoff and jitter")
		fl.DurationVar(&sf.timeout, "timeout", 0, "per node-run time limit (0: none)")
		fl.StringVar(&sf.onLeaseExpiry, "on-lease-expiry", "retry", "when the server running a node-run dies: retry (requeue it) or fail")
		fl.StringSliceVar(&sf.after, "after", nil, "start only once these jobs succeeded (job ids, comma-separated or repeated); "+
			"if one fails, this job's runs are blocked until it is retried (muster job retry)")
		fl.BoolVar(&sf.afterEach, "after-each", false, "with --after: per node, each target's run waits only for those jobs' runs on the same node")
		fl.StringSliceVar(&sf.afterNode, "after-node", nil, "start each target's run only once its own node's runs of these jobs succeeded (per node, beside --after's whole jobs)")
		sf.change.add(fl)
		fl.BoolVar(&sf.watch, "watch", false, "follow the job until it finishes, printing each target's output and result")
		fl.BoolVar(&sf.stream, "stream", true, "with --watch, print output live, each line prefixed with its target (--stream=false: each target's output under its result)")
		fl.StringVar(&a.flags.runAs, "run-as", "", "run as this user through sudo on the targets")
		fl.BoolVar(&a.flags.sudoPasswordPrompt, "sudo-password-prompt", false, "ask for the sudo password (or set MUSTER_SUDO_PASSWORD); it is sealed before it is stored")
		if k.Name() == "command" {
			fl.BoolVar(&sf.pull, "pull", false, "hand the command to the targets' own agents (signed nodes, by certname glob or inventory group) "+
				"instead of running it over SSH: each agent runs it at once through its held check-in")
		}
		if k.Name() == "command" || k.Name() == "script" {
			fl.StringArrayVar(&a.flags.envVars, "env-var", nil, "environment variable K=V for the command (repeatable)")
		}
		if k.Name() == "task" || k.Name() == "plan" {
			fl.StringVar(&sf.params, "params", "", "parameters as a JSON object, @file.json, or - for stdin")
		}
		if k.Name() == "plan" {
			fl.IntVarP(&sf.concurrency, "concurrency", "c", 0, "most targets each step acts on at once (default: the server's --concurrency)")
		}
	}
	g := group("submit", "Queue a command, script, task or plan on a server", kinds...)
	g.Long = `Queue work on the server. Each target becomes one node-run; a node never
runs two at once, and a request for a node that already waits with the
same work merges into it. Secrets (the sudo password, sensitive task
parameters) are sealed by the server before they are stored.

--after ID[,ID] starts the job only once those jobs succeeded (every run of
them, after their retries); with --after-each the dependency is per node:
each target's run waits for those jobs' runs on the same node, and
--after-node ID[,ID] adds jobs waited for that way beside --after's. If one of
them fails or is cancelled, the runs waiting for it are blocked, with the
reason ('muster job show'); 'muster job retry ID' requeues the failed runs
and the blocked ones go back to waiting.

The job's id is printed at once; --watch follows it to the end, and the
exit code then says how it went (0 all succeeded, 1 some failed).
Node-runs see MUSTER_JOB_ID, MUSTER_RUN_ID, MUSTER_NODE and MUSTER_ATTEMPT
in their environment (command and script jobs).`
	return g
}

// jobParams parses task or plan parameters like 'muster task run' does,
// typed by the local task metadata when the task is on this machine's
// module path (the server checks them again against its own).
func (a *app) jobParams(name string, args []string, paramsFlag string, isTask bool) (map[string]any, error) {
	if !isTask {
		if idx, err := a.planIndex(); err == nil {
			if p, err := idx.Get(name); err == nil {
				params, err := p.ParseCLIParams(args, paramsFlag, a.stdin)
				if err != nil {
					return nil, inputError{err}
				}
				return params, nil
			}
		}
	}
	var md *task.Metadata
	if isTask {
		if idx, err := a.taskIndex(); err == nil {
			if tk, err := idx.Get(name); err == nil {
				md = tk.Metadata
			}
		}
	}
	params, err := task.ParseCLIParams(args, paramsFlag, a.stdin, md)
	if err != nil {
		return nil, inputError{err}
	}
	return params, nil
}

func (a *app) submitJob(c *cobra.Command, cf *clientFlags, sf *submitFlags, kind muster.JobKind, spec muster.JobSpec) error {
	if err := a.checkFormat(); err != nil {
		return err
	}
	if len(a.flags.targets) == 0 {
		return usagef("'%s' needs targets: -t with a group, name, glob or URI from the server's inventory", c.CommandPath())
	}
	specs, err := a.targetSpecs(a.flags.targets)
	if err != nil {
		return err
	}
	runAt, err := parseAt(sf.at, time.Now())
	if err != nil {
		return err
	}
	if err := checkSubmitDurations(c, sf); err != nil {
		return err
	}
	after, afterNode, err := parseAfter(sf)
	if err != nil {
		return err
	}
	policy := muster.LeasePolicy(sf.onLeaseExpiry)
	if policy != muster.LeaseRetry && policy != muster.LeaseFail {
		return usagef("--on-lease-expiry %q: use retry or fail", sf.onLeaseExpiry)
	}
	env, err := a.flags.env()
	if err != nil {
		return err
	}
	spec.Env, spec.RunAs = env, a.flags.runAs
	if sf.pull && (spec.RunAs != "" || a.flags.sudoPasswordPrompt) {
		return usagef("--pull: the agents run the command as their own user; --run-as and --sudo-password-prompt do not apply")
	}
	pw, err := a.flags.sudoPassword()
	if err != nil {
		return err
	}
	if pw != "" {
		spec.Secrets = map[string]string{muster.SecretSudoPassword: pw}
	}
	if err := spec.Validate(kind); err != nil {
		return inputError{err}
	}
	cl, err := cf.client()
	if err != nil {
		return err
	}
	req := api.SubmitRequest{
		Kind: kind, Targets: api.Targets{Spec: strings.Join(specs, ",")}, Spec: spec,
		Priority: sf.priority, RunAt: runAt, Every: api.Duration(sf.every), Continuous: sf.continuous,
		Retries: sf.retries, Timeout: api.Duration(sf.timeout), OnLeaseExpiry: policy, Pull: sf.pull,
		After: after, AfterEach: sf.afterEach, AfterNode: afterNode,
	}
	if err := sf.change.apply(&req); err != nil {
		return err
	}
	res, err := cl.Submit(c.Context(), req)
	if err != nil {
		return apiError(err)
	}
	if a.flags.format == "json" && !sf.watch {
		return a.printJSON(res)
	}
	msg := fmt.Sprintf("Job %d queued: %s %q on %d target(s)", res.Job.ID, kind, res.Job.Object, res.Job.TargetCount)
	if sf.pull {
		msg = fmt.Sprintf("Job %d queued: %s %q for the agents of %d node(s)", res.Job.ID, kind, res.Job.Object, res.Job.TargetCount)
	}
	if n := len(res.Coalesced); n > 0 {
		msg += fmt.Sprintf(", %d merged into runs already waiting", n)
	}
	if !res.Job.RunAt.IsZero() && res.Job.RunAt.After(time.Now()) {
		msg += ", not before " + res.Job.RunAt.Local().Format(time.RFC3339)
	}
	if len(res.Job.After) > 0 {
		msg += ", " + afterText(res.Job)
		if n := res.Job.Counts[muster.RunBlocked]; n > 0 {
			msg += fmt.Sprintf(" (%d run(s) blocked already: see muster job show %d)", n, res.Job.ID)
		}
	}
	out := a.stdout
	if a.flags.format == "json" {
		out = a.stderr
	}
	fmt.Fprintln(out, msg)
	a.sayWhereResolved(out, cl.BaseURL(), res.Inventory)
	if !sf.watch {
		fmt.Fprintf(out, "Follow it with: muster job watch %d\n", res.Job.ID)
		return nil
	}
	return a.watchJob(c.Context(), cl, res.Job.ID, sf.stream)
}
