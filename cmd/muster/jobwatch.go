package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/output"
)

func (a *app) jobWatchCommand(cf *clientFlags) *cobra.Command {
	stream := true
	c := &cobra.Command{
		Use:   "watch ID",
		Short: "Follow a job live: its targets' output as it comes, each result as its run ends, then a summary",
		Long: `Follow a job until it finishes. Output is printed live as the node-runs
write it, each line prefixed with its target ("[web1] out: ..."), and each
target's status as its run ends; a summary closes it. With --stream=false,
each target's output is printed under its result instead, as runs end.
With --format json, one Bolt result object per line as runs end (no live
output). A job that repeats (--every, --continuous) finishes only once it
is cancelled.

Exit code: 0 when every run succeeded, 1 when any failed or the job was
cancelled. Ctrl-C stops watching; the job goes on.`,
		Example: `  muster job watch 42
  muster job watch 42 --stream=false
  muster job watch 42 --format json | jq -c 'select(.status != "success")'`,
		Args: exactArgs(1, "a job ID"),
		RunE: func(c *cobra.Command, args []string) error {
			id, cl, err := a.jobTarget(cf, args[0])
			if err != nil {
				return err
			}
			return a.watchJob(c.Context(), cl, id, stream)
		},
	}
	c.Flags().BoolVar(&stream, "stream", true, "print output live, each line prefixed with its target (--stream=false: each target's output under its result)")
	return c
}

// errStalled ends a watch whose job cannot move on by itself.
var errStalled = errors.New("the job's remaining runs are blocked")

// stalled reports whether a job's runs are all final or blocked, with
// some blocked: none will start until a dependency is retried.
func stalled(counts map[muster.RunState]int) bool {
	for st, n := range counts {
		if n > 0 && !st.Final() && st != muster.RunBlocked {
			return false
		}
	}
	return counts[muster.RunBlocked] > 0
}

// watchJob follows a job's events: live output (human format, when
// stream), each run's result as it ends, then the summary.
func (a *app) watchJob(ctx context.Context, cl *api.Client, id int64, stream bool) error {
	json := a.flags.format == "json"
	var w *watchPrinter // made at the first event, with a progress bar on a terminal
	printer := func(total int) *watchPrinter {
		if w == nil {
			w = a.newWatchPrinter(total, stream)
		}
		return w
	}
	printed := map[int64]int{} // run id -> attempt printed
	var results []*muster.Result
	var final *api.JobView
	start := time.Now()
	err := cl.Events(ctx, id, func(ev api.Event) error {
		switch ev.Type {
		case api.EventJob:
			if !json {
				printer(ev.Job.TargetCount)
			}
			if stalled(ev.Job.Counts) {
				final = ev.Job
				return errStalled
			}
		case api.EventOutput:
			if !json && stream {
				printer(0).output(ev.Output)
			}
		case api.EventRun:
			res := ev.Run.Result()
			if res == nil || printed[ev.Run.ID] == ev.Run.Attempt {
				return nil
			}
			printed[ev.Run.ID] = ev.Run.Attempt
			results = append(results, res)
			if json {
				b, _ := res.MarshalJSON()
				fmt.Fprintln(a.stdout, string(b))
			} else {
				printer(0).result(ev.Run, res)
			}
		case api.EventEnd:
			final = ev.Job
		}
		return nil
	})
	blocked := errors.Is(err, errStalled)
	if err != nil && !blocked {
		if ctx.Err() != nil {
			return nil // interrupted: the job goes on
		}
		return apiError(err)
	}
	if w != nil && w.bar != nil {
		w.bar.Done()
	}
	if !json && len(results) > 0 {
		_ = printer(0).full.Finish(results, time.Since(start), false)
	}
	if final == nil {
		return nil
	}
	if blocked {
		// Nothing will move until the failed work it waits for is retried:
		// say so rather than wait for ever.
		fmt.Fprintf(a.stderr, "Job %d: %d run(s) blocked by a failed dependency; 'muster job show %d' says which, "+
			"and 'muster job retry' of that job unblocks them\n", id, final.Counts[muster.RunBlocked], id)
		return errFailedRun
	}
	if !json {
		fmt.Fprintf(a.stdout, "Job %d %s\n", id, final.State)
	}
	if final.State != muster.JobSucceeded {
		return errFailedRun
	}
	return nil
}

// watchPrinter prints a watched job in the human format. With live
// output on, lines are printed as they come, prefixed with their target,
// and a run's end prints the rest of its output from the result, so each
// line shows once; the result itself then shows only its status (and
// error). A result whose output is not plain stdout/stderr (a task's
// value, a plan's return) and that printed nothing live is shown whole.
type watchPrinter struct {
	full   *output.Human
	quiet  *output.Human // with live output on: results without their output
	bar    *output.ProgressBar
	stream *output.Stream // nil without live output
	runs   map[int64]*watchedRun
}

// watchedRun is the live output shown so far of one attempt.
type watchedRun struct {
	attempt int
	w       [2]io.Writer // stdout, stderr line writers
	shown   [2]int       // bytes of each shown
}

func (a *app) newWatchPrinter(total int, live bool) *watchPrinter {
	ho, bar := a.humanOptions(total)
	p := &watchPrinter{full: output.NewHuman(a.stdout, ho), bar: bar, runs: map[int64]*watchedRun{}}
	if live {
		ho.Streamed = true
		p.quiet = output.NewHuman(a.stdout, ho)
		p.stream = output.NewStream(a.stdout, clearOf(bar))
	}
	return p
}

// run returns the live state of a run's attempt, starting it afresh for
// a new attempt (whose output begins again).
func (p *watchPrinter) run(id int64, attempt int, target string) *watchedRun {
	r := p.runs[id]
	if r == nil || r.attempt != attempt {
		if r != nil {
			r.flush()
		}
		r = &watchedRun{attempt: attempt}
		r.w[0], r.w[1] = p.stream.Writers(&muster.Target{Name: target})
		p.runs[id] = r
	}
	return r
}

func (r *watchedRun) flush() {
	for _, w := range r.w {
		if f, ok := w.(interface{ Flush() }); ok {
			f.Flush()
		}
	}
}

func (p *watchPrinter) output(o *api.OutputView) {
	if p.stream == nil {
		return
	}
	i := 0
	if o.Stream == muster.OutputStderr {
		i = 1
	}
	r := p.run(o.RunID, o.Attempt, o.Target)
	r.w[i].Write([]byte(o.Data))
	r.shown[i] += len(o.Data)
}

func (p *watchPrinter) result(v *api.RunView, res *muster.Result) {
	if p.stream == nil {
		p.full.Result(res)
		return
	}
	prior, live := p.runs[v.ID]
	live = live && prior.attempt == v.Attempt
	stdout, okOut := res.Value["stdout"].(string)
	stderr, okErr := res.Value["stderr"].(string)
	if !okOut && !okErr && !live {
		p.full.Result(res)
		return
	}
	r := p.run(v.ID, v.Attempt, v.Target)
	for i, s := range []string{stdout, stderr} {
		if r.shown[i] < len(s) {
			r.w[i].Write([]byte(s[r.shown[i]:]))
		}
	}
	r.flush()
	delete(p.runs, v.ID)
	p.quiet.Result(res)
}
