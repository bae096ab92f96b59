package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster"
)

func (a *app) jobStatsCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show the queue: runs by state, the oldest ready run's age, wait and run-time percentiles, throughput",
		Long: `Show the queue as the server sees it. "Oldest ready" is how long the
longest-waiting ready run has waited: when it grows, add capacity. Wait is
ready-to-started, run time started-to-finished, both as p50/p95/p99 over
the most recent finished runs (never a mean).`,
		Example: `  muster job stats
  muster job stats --format json`,
		Args: noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cl, err := a.jobClient(cf)
			if err != nil {
				return err
			}
			st, err := cl.Stats(c.Context())
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(st)
			}
			var states []string
			for _, s := range muster.RunStates {
				states = append(states, fmt.Sprintf("%s %d", s, st.Counts[s]))
			}
			fmt.Fprintf(a.stdout, "Runs:         %s\n", strings.Join(states, ", "))
			fmt.Fprintf(a.stdout, "Ready:        %d (oldest waiting %s)\n", st.Ready, secs(st.OldestReadyAgeSeconds))
			fmt.Fprintf(a.stdout, "Wait:         p50 %s  p95 %s  p99 %s  (%d runs)\n", secs(st.Wait.P50), secs(st.Wait.P95), secs(st.Wait.P99), st.Wait.N)
			fmt.Fprintf(a.stdout, "Run time:     p50 %s  p95 %s  p99 %s  (%d runs)\n", secs(st.RunTime.P50), secs(st.RunTime.P95), secs(st.RunTime.P99), st.RunTime.N)
			fmt.Fprintf(a.stdout, "Finished:     %d in 1m, %d in 5m, %d in 15m\n", st.Finished.M1, st.Finished.M5, st.Finished.M15)
			fmt.Fprintf(a.stdout, "Throughput:   %.2f/s (1m), %.2f/s (5m), %.2f/s (15m)\n", st.Throughput.M1, st.Throughput.M5, st.Throughput.M15)
			return nil
		},
	}
}

func secs(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond).String()
}
