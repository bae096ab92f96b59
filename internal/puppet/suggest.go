package puppet

import (
	"sort"
	"strings"
)

// Closest returns the candidate nearest to s by edit distance, or "" when
// none is close enough to be a plausible typo (for "did you mean" hints).
func Closest(s string, cands []string) string {
	if best := Suggest(s, cands, 1); len(best) > 0 {
		return best[0]
	}
	return ""
}

// Suggest returns up to n distinct candidates close enough to s to be a
// plausible typo of it (case-insensitive edit distance below len(s)/3+2),
// nearest first, ties in the order of cands.
func Suggest(s string, cands []string, n int) []string {
	type near struct {
		c string
		d int
	}
	var found []near
	limit, ls := len(s)/3+2, strings.ToLower(s)
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c] {
			continue
		}
		seen[c] = true
		if d := editDistance(ls, strings.ToLower(c)); d < limit {
			found = append(found, near{c, d})
		}
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].d < found[j].d })
	var out []string
	for _, f := range found[:min(max(n, 0), len(found))] {
		out = append(out, f.c)
	}
	return out
}

func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	if len(ra) > 200 || len(rb) > 200 {
		return max(len(ra), len(rb))
	}
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
