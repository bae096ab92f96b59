package sqlstore_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/store/sqlite"
	"github.com/muster-run/muster/internal/store/sqlstore"
)

// TestClaimPlansSQLite: on SQLite, whose planner has no statistics and
// uses a partial index only when the query repeats its predicate, the
// servers' claim reads the ready order of push runs through
// runs_ready_order, and an agent's claim its node's pull runs through
// runs_pull_waiting, whatever the queue holds.
func TestClaimPlansSQLite(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "muster.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tests := []struct {
		name  string
		query string
		args  []any
		want  string
	}{
		{"ClaimRuns' ready order", sqlstore.OrderedQuery, []any{10}, "USING INDEX runs_ready_order"},
		{"ClaimRuns' exact path", sqlstore.CandidatesQuery, []any{10}, "USING INDEX runs_ready_order"},
		{"ClaimNodeRun", `SELECT r.id FROM runs r WHERE ` + sqlstore.PullReadyCond + `
			ORDER BY r.bump DESC, r.priority DESC, r.run_at, r.id LIMIT 1`, []any{"web1", 0}, "USING INDEX runs_pull_waiting"},
	}
	for _, tc := range tests {
		rows, err := s.DB().QueryContext(ctx, `EXPLAIN QUERY PLAN `+tc.query, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		if got := strings.Join(plan, "\n"); !strings.Contains(got, tc.want) {
			t.Errorf("%s: the plan does not say %q:\n%s", tc.name, tc.want, got)
		} else {
			t.Logf("%s:\n%s", tc.name, got)
		}
	}
}
