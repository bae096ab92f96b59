package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// statsWatchMaxBackoff bounds the wait between retries while the server
// is away (--interval, doubling per failure).
const statsWatchMaxBackoff = 30 * time.Second

func (a *app) jobStatsCommand(cf *clientFlags) *cobra.Command {
	var watch bool
	var interval time.Duration
	c := &cobra.Command{
		Use:   "stats",
		Short: "Show the queue: runs by state, the oldest ready run's age, wait and run-time percentiles, throughput",
		Long: `Show the queue as the server sees it. "Oldest ready" is how long the
longest-waiting ready run has waited: when it grows, add capacity. Wait is
ready-to-started, run time started-to-finished, both as p50/p95/p99 over
the most recent finished runs (never a mean).

With --watch the stats are read again every --interval until Ctrl-C
(which exits 0). On a terminal the screen is redrawn in place; otherwise
each reading is appended under a timestamp line. With --format json each
reading is one JSON object on a line of its own, with a "time" field. When
the server goes away the watch says so on stderr and keeps trying, waiting
longer after each failure (up to 30s); it gives up only when the server
refuses the token (exit 2).

GET /api/v1/capacity turns the same numbers into "N more workers would
clear the backlog within the target age" (see contrib/autoscaling).`,
		Example: `  muster job stats
  muster job stats --format json
  muster job stats --watch
  muster job stats --watch --interval 10s --format json >> queue.jsonl`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if interval < 100*time.Millisecond {
				return usagef("--interval must be at least 100ms, got %s", interval)
			}
			if !watch && c.Flags().Changed("interval") {
				return usagef("--interval goes with --watch")
			}
			cl, err := a.jobClient(cf)
			if err != nil {
				return err
			}
			if watch {
				return a.watchStats(c.Context(), cl, interval)
			}
			st, err := cl.Stats(c.Context())
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(st)
			}
			writeStats(a.stdout, st)
			return nil
		},
	}
	c.Flags().BoolVarP(&watch, "watch", "w", false, "read the stats again every --interval until interrupted")
	c.Flags().DurationVar(&interval, "interval", 2*time.Second, "how often --watch reads the stats")
	return c
}

// writeStats prints the stats for people.
func writeStats(w io.Writer, st api.StatsView) {
	var states []string
	for _, s := range muster.RunStates {
		states = append(states, fmt.Sprintf("%s %d", s, st.Counts[s]))
	}
	fmt.Fprintf(w, "Runs:         %s\n", strings.Join(states, ", "))
	fmt.Fprintf(w, "Ready:        %d (oldest waiting %s)\n", st.Ready, secs(st.OldestReadyAgeSeconds))
	fmt.Fprintf(w, "Wait:         p50 %s  p95 %s  p99 %s  (%d runs)\n", secs(st.Wait.P50), secs(st.Wait.P95), secs(st.Wait.P99), st.Wait.N)
	fmt.Fprintf(w, "Run time:     p50 %s  p95 %s  p99 %s  (%d runs)\n", secs(st.RunTime.P50), secs(st.RunTime.P95), secs(st.RunTime.P99), st.RunTime.N)
	fmt.Fprintf(w, "Finished:     %d in 1m, %d in 5m, %d in 15m\n", st.Finished.M1, st.Finished.M5, st.Finished.M15)
	fmt.Fprintf(w, "Throughput:   %.2f/s (1m), %.2f/s (5m), %.2f/s (15m)\n", st.Throughput.M1, st.Throughput.M5, st.Throughput.M15)
}

// statsLine is one reading of --watch --format json.
type statsLine struct {
	Time time.Time `json:"time"`
	api.StatsView
}

// watchStats shows the stats every interval until ctx ends (Ctrl-C: a
// clean exit). A failed reading is reported on stderr and retried after
// a backoff; only a refused token (401, 403) ends the watch.
func (a *app) watchStats(ctx context.Context, cl *api.Client, interval time.Duration) error {
	jsonOut := a.flags.format == "json"
	redraw := !jsonOut && isTerminal(a.stdout)
	wait, failures := interval, 0
	for {
		st, err := cl.Stats(ctx)
		now := time.Now()
		switch {
		case ctx.Err() != nil:
			a.interrupted.Store(false) // Ctrl-C is how a watch ends
			return nil
		case err != nil:
			if refusedToken(err) {
				return apiError(err)
			}
			failures++
			wait = max(interval, min(statsWatchMaxBackoff, interval<<min(failures-1, 16)))
			fmt.Fprintf(a.stderr, "%s: cannot read the stats (%v); trying again in %s\n",
				now.Format(time.RFC3339), err, wait)
		default:
			if failures > 0 {
				fmt.Fprintf(a.stderr, "%s: the server answers again after %d failed attempt(s)\n", now.Format(time.RFC3339), failures)
			}
			failures, wait = 0, interval
			if err := a.showStats(now, st, interval, jsonOut, redraw); err != nil {
				return err
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			a.interrupted.Store(false)
			return nil
		case <-t.C:
		}
	}
}

// showStats writes one reading of the watch.
func (a *app) showStats(now time.Time, st api.StatsView, interval time.Duration, jsonOut, redraw bool) error {
	if jsonOut {
		b, err := json.Marshal(statsLine{Time: now.UTC(), StatsView: st})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	var b strings.Builder
	if redraw {
		b.WriteString("\x1b[H\x1b[2J") // home, clear the screen
		fmt.Fprintf(&b, "Every %s: muster job stats    %s\n\n", interval, now.Format(time.DateTime))
	} else {
		fmt.Fprintf(&b, "--- %s\n", now.Format(time.RFC3339))
	}
	writeStats(&b, st)
	if !redraw {
		b.WriteString("\n")
	}
	_, err := io.WriteString(a.stdout, b.String())
	return err
}

// refusedToken reports whether the server refused the caller's token: the
// one failure that retrying cannot mend.
func refusedToken(err error) bool {
	var ae *api.APIError
	return errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403)
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}
