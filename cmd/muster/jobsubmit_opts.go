package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster/internal/api"
)

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

// parseAfter reads --after and --after-node (job ids, comma-separated or
// repeated) and checks --after-each.
func parseAfter(sf *submitFlags) (after, afterNode []int64, err error) {
	seen := map[int64]bool{}
	read := func(flag string, vals []string) ([]int64, error) {
		var ids []int64
		for _, v := range vals {
			id, err := jobID(strings.TrimSpace(v))
			if err != nil {
				return nil, usagef("--%s %q: want job ids such as 12 or 12,13", flag, v)
			}
			if seen[id] {
				return nil, usagef("--%s: job %d is listed twice (in --after or --after-node)", flag, id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		return ids, nil
	}
	if after, err = read("after", sf.after); err != nil {
		return nil, nil, err
	}
	if afterNode, err = read("after-node", sf.afterNode); err != nil {
		return nil, nil, err
	}
	switch {
	case sf.afterEach && len(after) == 0:
		return nil, nil, usagef("--after-each makes --after per node: give the jobs with --after ID[,ID]")
	case len(after)+len(afterNode) > 0 && sf.pull:
		return nil, nil, usagef("--after and --after-node do not go with --pull: a pulled command goes to the agents at once")
	}
	return after, afterNode, nil
}

// afterText says which jobs a job runs after: "after job 12", "after
// jobs 12, 13 (per node)" or "after job 12, and per node after job 13".
func afterText(j api.JobView) string {
	perNode := map[int64]bool{}
	for _, id := range j.AfterNode {
		perNode[id] = true
	}
	var whole, each []string
	for _, id := range j.After {
		if perNode[id] {
			each = append(each, strconv.FormatInt(id, 10))
		} else {
			whole = append(whole, strconv.FormatInt(id, 10))
		}
	}
	jobs := func(ids []string) string {
		if len(ids) > 1 {
			return "jobs " + strings.Join(ids, ", ")
		}
		return "job " + strings.Join(ids, ", ")
	}
	switch {
	case len(whole) == 0:
		return "after " + jobs(each) + " (per node)"
	case len(each) == 0:
		return "after " + jobs(whole)
	}
	return "after " + jobs(whole) + ", and per node after " + jobs(each)
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
