package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/output"
)

func (a *app) jobCommand() *cobra.Command {
	var cf clientFlags
	submit := a.jobSubmitCommand(&cf)
	list, show, watch, cancel, bump, stats := a.jobListCommand(&cf), a.jobShowCommand(&cf), a.jobWatchCommand(&cf),
		a.jobMutateCommand(&cf, "cancel"), a.jobMutateCommand(&cf, "bump"), a.jobStatsCommand(&cf)
	g := group("job", "Queue work on a muster server, and follow it", submit, list, show, watch, cancel, bump,
		a.jobRetryCommand(&cf), a.jobFingerprintsCommand(&cf), stats)
	g.Long = `Talk to a running 'muster server' through its HTTP API. A job is a command,
script, task or plan against targets; the server resolves the targets with
its inventory and queues one node-run per target.

The server is $MUSTER_SERVER or --server (default ` + defaultServerURL + `), and
the token $MUSTER_TOKEN or --token-file (default: the admin token a server
on this machine wrote to its data directory).`
	cf.register(g)
	return g
}

func (a *app) jobListCommand(cf *clientFlags) *cobra.Command {
	var state string
	var limit int
	c := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Example: `  muster job list
  muster job list --state running --format json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := a.jobClient(cf)
			if err != nil {
				return err
			}
			list, err := cl.ListJobs(c.Context(), api.ListJobsOptions{State: muster.JobState(state), Limit: limit})
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(list)
			}
			if len(list.Jobs) == 0 {
				fmt.Fprintln(a.stdout, "No jobs.")
				return nil
			}
			fmt.Fprintf(a.stdout, "%-6s %-9s %-8s %-8s %-20s %s\n", "ID", "STATE", "KIND", "TARGETS", "CREATED", "OBJECT")
			for _, j := range list.Jobs {
				obj := oneLine(j.Object, 60)
				if len(j.After) > 0 {
					obj += "  [" + afterText(j) + "]"
				}
				fmt.Fprintf(a.stdout, "%-6d %-9s %-8s %-8s %-20s %s\n", j.ID, j.State, j.Kind, progress(j),
					j.CreatedAt.Local().Format("2006-01-02 15:04:05"), obj)
			}
			return nil
		},
	}
	c.Flags().StringVar(&state, "state", "", "only jobs in this state: waiting, blocked, scheduled, pending, running, succeeded, failed or cancelled")
	c.Flags().IntVar(&limit, "limit", 50, "at most this many jobs")
	return c
}

// progress is "done/total" of a job's runs.
func progress(j api.JobView) string {
	done, total := 0, 0
	for st, n := range j.Counts {
		total += n
		if st.Final() {
			done += n
		}
	}
	return fmt.Sprintf("%d/%d", done, total)
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

func jobID(arg string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("%q is not a job id (a positive number, as 'muster job list' shows)", arg)
	}
	return id, nil
}

// jobTarget checks --format and the job id argument and makes the client.
func (a *app) jobTarget(cf *clientFlags, arg string) (int64, *api.Client, error) {
	if err := a.checkFormat(); err != nil {
		return 0, nil, err
	}
	id, err := jobID(arg)
	if err != nil {
		return 0, nil, err
	}
	cl, err := cf.client()
	return id, cl, err
}

// jobClient checks --format and makes the client.
func (a *app) jobClient(cf *clientFlags) (*api.Client, error) {
	if err := a.checkFormat(); err != nil {
		return nil, err
	}
	return cf.client()
}

func (a *app) jobShowCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show a job and each target's result",
		Long: `Show a job's settings and each target's result, in the same human and
JSON formats as 'muster command run' (JSON adds a "job" object). Runs that
have not finished are listed with their state.`,
		Example: `  muster job show 42
  muster job show 42 --format json`,
		Args: exactArgs(1, "a job ID"),
		RunE: func(c *cobra.Command, args []string) error {
			id, cl, err := a.jobTarget(cf, args[0])
			if err != nil {
				return err
			}
			job, err := cl.Job(c.Context(), id)
			if err != nil {
				return apiError(err)
			}
			runs, err := cl.Runs(c.Context(), id, api.RunsOptions{})
			if err != nil {
				return apiError(err)
			}
			return a.printJob(job, runs)
		},
	}
}

func (a *app) printJob(job api.JobView, runs []api.RunView) error {
	var results []*muster.Result
	for _, r := range runs {
		if res := r.Result(); res != nil {
			results = append(results, res)
		}
	}
	if a.flags.format == "json" {
		items := results
		if items == nil {
			items = []*muster.Result{}
		}
		return a.printJSON(map[string]any{"job": job, "items": items, "target_count": job.TargetCount,
			"elapsed_time": elapsedOf(runs).Seconds()})
	}
	fmt.Fprintf(a.stdout, "Job %d: %s %q\n", job.ID, job.Kind, oneLine(job.Object, 200))
	fmt.Fprintf(a.stdout, "  state %s, %s runs finished, priority %d, created %s by %s\n", job.State, progress(job),
		job.Priority, job.CreatedAt.Local().Format(time.RFC3339), job.CreatedBy)
	switch {
	case job.Continuous:
		fmt.Fprintln(a.stdout, "  continuous: each node runs again as soon as its run ends")
	case job.Every > 0:
		fmt.Fprintf(a.stdout, "  recurring every %s\n", time.Duration(job.Every))
	}
	if len(job.After) > 0 {
		fmt.Fprintf(a.stdout, "  runs %s: each run starts once they succeeded\n", afterText(job))
	}
	ho, _ := a.humanOptions(0)
	h := output.NewHuman(a.stdout, ho)
	for _, r := range runs {
		if res := r.Result(); res != nil {
			h.Result(res)
			continue
		}
		switch r.State {
		case muster.RunWaiting:
			fmt.Fprintf(a.stdout, "waiting on %s: %s\n", r.Target, afterText(job))
		case muster.RunBlocked:
			fmt.Fprintf(a.stdout, "blocked on %s: %s\n", r.Target, strings.TrimPrefix(r.Error, "blocked: "))
		default:
			fmt.Fprintf(a.stdout, "%s on %s (attempt %d)\n", r.State, r.Target, r.Attempt)
		}
	}
	if len(results) > 0 {
		return h.Finish(results, elapsedOf(runs), false)
	}
	return nil
}

// elapsedOf spans the first start to the last finish of runs.
func elapsedOf(runs []api.RunView) time.Duration {
	var first, last time.Time
	for _, r := range runs {
		if !r.StartedAt.IsZero() && (first.IsZero() || r.StartedAt.Before(first)) {
			first = r.StartedAt
		}
		if r.FinishedAt.After(last) {
			last = r.FinishedAt
		}
	}
	if first.IsZero() || last.Before(first) {
		return 0
	}
	return last.Sub(first)
}

func (a *app) jobMutateCommand(cf *clientFlags, verb string) *cobra.Command {
	short := map[string]string{
		"cancel": "Cancel a job: runs that have not started never will; running ones are stopped",
		"bump":   "Move a job's waiting runs to the front of the queue, ready now",
	}[verb]
	return &cobra.Command{
		Use:     verb + " ID",
		Short:   short,
		Example: "  muster job " + verb + " 42",
		Args:    exactArgs(1, "a job ID"),
		RunE: func(c *cobra.Command, args []string) error {
			id, cl, err := a.jobTarget(cf, args[0])
			if err != nil {
				return err
			}
			if verb == "cancel" {
				res, err := cl.Cancel(c.Context(), id)
				if err != nil {
					return apiError(err)
				}
				if a.flags.format == "json" {
					return a.printJSON(res)
				}
				fmt.Fprintf(a.stdout, "Job %d cancelled: %d waiting run(s) will not start; %d running run(s) are being stopped",
					id, res.Cancelled, res.Stopping)
				if shared := res.Job.Counts[muster.RunRunning] - res.Stopping; shared > 0 {
					fmt.Fprintf(a.stdout, "; %d running run(s) shared with another job go on for it", shared)
				}
				fmt.Fprintln(a.stdout)
				return nil
			}
			job, err := cl.Bump(c.Context(), id)
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(job)
			}
			fmt.Fprintf(a.stdout, "Job %d moved to the front of the queue\n", id)
			return nil
		},
	}
}

func (a *app) jobRetryCommand(cf *clientFlags) *cobra.Command {
	var node string
	c := &cobra.Command{
		Use:   "retry ID",
		Short: "Requeue a job's failed runs; the jobs it blocked go back to waiting",
		Long: `Requeue a job's failed runs (or its failed run on one node, with --node):
each is ready at once, with the job's retries again. The runs of jobs
submitted --after this one that its failure blocked go back to waiting, and
start once it succeeds.`,
		Example: `  muster job retry 42
  muster job retry 42 --node web3`,
		Args: exactArgs(1, "a job ID"),
		RunE: func(c *cobra.Command, args []string) error {
			id, cl, err := a.jobTarget(cf, args[0])
			if err != nil {
				return err
			}
			res, err := cl.Retry(c.Context(), id, node)
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(res)
			}
			fmt.Fprintf(a.stdout, "Job %d: %d failed run(s) requeued", id, len(res.Retried))
			if res.Unblocked > 0 {
				fmt.Fprintf(a.stdout, "; %d blocked run(s) of later jobs wait for them again", res.Unblocked)
			}
			fmt.Fprintln(a.stdout)
			return nil
		},
	}
	c.Flags().StringVar(&node, "node", "", "only the failed run on this node")
	return c
}
