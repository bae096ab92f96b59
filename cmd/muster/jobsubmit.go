package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/httpapi"
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
}

func (a *app) jobSubmitCommand(cf *clientFlags) *cobra.Command {
	var sf submitFlags
	kinds := []*cobra.Command{
		{
			Use: "command COMMAND -t TARGETS", Short: "Queue a shell command",
			Example: `  muster job submit command 'systemctl restart nginx' -t web --run-as root --retries 2
  muster job submit command 'puppet agent -t' -t all --continuous --timeout 30m`,
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
				return a.submitJob(c, cf, &sf, muster.JobPlan, muster.JobSpec{Plan: args[0], Params: params})
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
		fl.BoolVar(&sf.watch, "watch", false, "follow the job until it finishes, printing each target's output and result")
		fl.BoolVar(&sf.stream, "stream", true, "with --watch, print output live, each line prefixed with its target (--stream=false: each target's output under its result)")
		fl.StringVar(&a.flags.runAs, "run-as", "", "run as this user through sudo on the targets")
		fl.BoolVar(&a.flags.sudoPasswordPrompt, "sudo-password-prompt", false, "ask for the sudo password (or set MUSTER_SUDO_PASSWORD); it is sealed before it is stored")
		if k.Name() == "command" || k.Name() == "script" {
			fl.StringArrayVar(&a.flags.envVars, "env-var", nil, "environment variable K=V for the command (repeatable)")
		}
		if k.Name() == "task" || k.Name() == "plan" {
			fl.StringVar(&sf.params, "params", "", "parameters as a JSON object, @file.json, or - for stdin")
		}
	}
	g := group("submit", "Queue a command, script, task or plan on a server", kinds...)
	g.Long = `Queue work on the server. Each target becomes one node-run; a node never
runs two at once, and a request for a node that already waits with the
same work merges into it. Secrets (the sudo password, sensitive task
parameters) are sealed by the server before they are stored.

The job's id is printed at once; --watch follows it to the end, and the
exit code then says how it went (0 all succeeded, 1 some failed).
Node-runs see MUSTER_JOB_ID, MUSTER_RUN_ID, MUSTER_NODE and MUSTER_ATTEMPT
in their environment (command and script jobs).`
	return g
}

// scriptKind is 'job submit script', whose arguments follow the same rule
// as 'script run'.
func scriptKind(run func(c *cobra.Command, script string, args []string) error) *cobra.Command {
	c := &cobra.Command{
		Use: "script SCRIPT [ARGS...] -t TARGETS", Short: "Queue a local script (its content travels with the job)",
		Long: "Queue a local script: its content travels with the job.\n\n" + scriptArgsHelp,
		Example: `  muster job submit script ./rotate-logs.sh --keep 7 -t all --at 02:00
  muster job submit script ./check.sh -t web -- -t quick`,
	}
	withScriptArgs(c, run)
	return c
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
	policy := muster.LeasePolicy(sf.onLeaseExpiry)
	if policy != muster.LeaseRetry && policy != muster.LeaseFail {
		return usagef("--on-lease-expiry %q: use retry or fail", sf.onLeaseExpiry)
	}
	env, err := a.flags.env()
	if err != nil {
		return err
	}
	spec.Env, spec.RunAs = env, a.flags.runAs
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
	req := httpapi.SubmitRequest{
		Kind: kind, Targets: httpapi.Targets{Spec: strings.Join(specs, ",")}, Spec: spec,
		Priority: sf.priority, RunAt: runAt, Every: httpapi.Duration(sf.every), Continuous: sf.continuous,
		Retries: sf.retries, Timeout: httpapi.Duration(sf.timeout), OnLeaseExpiry: policy,
	}
	res, err := cl.Submit(c.Context(), req)
	if err != nil {
		return apiError(err)
	}
	if a.flags.format == "json" && !sf.watch {
		return a.printJSON(res)
	}
	msg := fmt.Sprintf("Job %d queued: %s %q on %d target(s)", res.Job.ID, kind, res.Job.Object, res.Job.TargetCount)
	if n := len(res.Coalesced); n > 0 {
		msg += fmt.Sprintf(", %d merged into runs already waiting", n)
	}
	if !res.Job.RunAt.IsZero() && res.Job.RunAt.After(time.Now()) {
		msg += ", not before " + res.Job.RunAt.Local().Format(time.RFC3339)
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

// checkSubmitDurations refuses counts and durations that would be
// ignored or make no sense: --every 0s, a negative --retries, a --timeout
// below a second.
func checkSubmitDurations(c *cobra.Command, sf *submitFlags) error {
	switch {
	case sf.retries < 0:
		return usagef("--retries must not be negative, got %d", sf.retries)
	case c.Flags().Changed("every") && sf.every < time.Second:
		return usagef("--every %s: a recurring job needs an interval of at least 1s (leave --every out for a one-off job)", sf.every)
	case sf.timeout < 0 || sf.timeout > 0 && sf.timeout < time.Second:
		return usagef("--timeout %s: use 0 for no limit, or at least 1s", sf.timeout)
	case sf.continuous && sf.every > 0:
		return usagef("--continuous and --every do not go together: a continuous job's next run is queued as soon as one ends")
	}
	return nil
}

// sayWhereResolved tells where the job's targets were resolved: by the
// server, with its own inventory. A project here with an inventory the
// server did not use gets a warning: its groups and names meant nothing.
func (a *app) sayWhereResolved(out io.Writer, server, serverInv string) {
	where := "its inventory " + serverInv
	if serverInv == "" {
		where = "no inventory (ad-hoc targets only)"
	}
	fmt.Fprintf(out, "Targets resolved by the server at %s, with %s\n", server, where)
	local, err := a.inventoryPath()
	if err != nil || local == "" || local == serverInv {
		return
	}
	fmt.Fprintf(a.stderr, "Warning: this project's inventory %s is not the one the server used; "+
		"the server reads its own (muster server --project, --inventoryfile)\n", local)
}

// parseAt reads --at: RFC 3339, HH:MM[:SS] (the next such local time), or
// +DURATION. "" means now (the zero time).
func parseAt(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := strings.CutPrefix(s, "+"); ok {
		v, err := time.ParseDuration(d)
		if err != nil || v < 0 {
			return time.Time{}, usagef("--at %q: +DURATION needs a Go duration such as +10m or +2h", s)
		}
		return now.Add(v), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, s, now.Location()); err == nil {
			at := time.Date(now.Year(), now.Month(), now.Day(), t.Hour(), t.Minute(), t.Second(), 0, now.Location())
			if !at.After(now) {
				at = at.AddDate(0, 0, 1)
			}
			return at, nil
		}
	}
	return time.Time{}, usagef("--at %q: use RFC 3339 (2026-12-01T02:00:00Z), HH:MM or +DURATION", s)
}
