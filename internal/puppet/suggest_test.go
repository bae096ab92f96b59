package puppet

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSuggest(t *testing.T) {
	cands := []string{"all", "web", "web_eu", "db", "web3", "db1", "DB2", "db1", "Frontend1"}
	for _, tc := range []struct {
		s    string
		n    int
		want []string
	}{
		{"webb", 3, []string{"web", "web3"}},
		{"db3", 3, []string{"db", "db1", "DB2"}},
		{"db3", 2, []string{"db", "db1"}},
		{"db3", 0, nil},
		{"frontend1", 3, []string{"Frontend1"}},
		{"zzzzzz", 3, nil},
		{"web", 1, []string{"web"}},
	} {
		if d := cmp.Diff(tc.want, Suggest(tc.s, cands, tc.n)); d != "" {
			t.Errorf("Suggest(%q, %d) (-want +got):\n%s", tc.s, tc.n, d)
		}
	}
	if got := Closest("webb", cands); got != "web" {
		t.Errorf("Closest = %q", got)
	}
}
