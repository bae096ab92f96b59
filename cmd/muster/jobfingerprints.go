package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

// jobFingerprintsCommand shows a change-driven job's stored fingerprints.
func (a *app) jobFingerprintsCommand(cf *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fingerprints ID",
		Short: "Show a change-driven job's fingerprints: each node's, when it last changed and how often",
		Long: `Show the fingerprints a continuous job submitted with --fingerprint keeps, one
per node: the value (a sha256 of the run's stdout, the task result's field or
the file), the run that produced it, when it last changed, and how many
times it has (the first result counts). A node whose result changed had the
job's --on-change action queued for it.`,
		Example: `  muster job fingerprints 42
  muster job fingerprints 42 --format json`,
		Args: exactArgs(1, "a job ID"),
		RunE: func(c *cobra.Command, args []string) error {
			if err := a.checkFormat(); err != nil {
				return err
			}
			id, cl, err := a.jobTarget(cf, args[0])
			if err != nil {
				return err
			}
			res, err := cl.Fingerprints(c.Context(), id)
			if err != nil {
				return apiError(err)
			}
			if a.flags.format == "json" {
				return a.printJSON(res)
			}
			if len(res.Fingerprints) == 0 {
				fmt.Fprintf(a.stdout, "Job %d has no fingerprints (not a --fingerprint job, or no result yet)\n", id)
				return nil
			}
			fmt.Fprintf(a.stdout, "%-24s %-8s %-20s %-8s %s\n", "NODE", "CHANGES", "LAST CHANGED", "RUN", "FINGERPRINT")
			for _, f := range res.Fingerprints {
				v := f.Value
				if len(v) > 16 {
					v = v[:16] + "..."
				}
				fmt.Fprintf(a.stdout, "%-24s %-8d %-20s %-8d %s\n", f.Node, f.Changes, f.ChangedAt.Local().Format(time.DateTime), f.RunID, v)
			}
			return nil
		},
	}
}
