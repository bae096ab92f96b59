package inventory

import (
	"os"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that errors carry a message
// naming the file, and that successful results are self-consistent.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/merge.yaml", "testdata/bad.yaml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"", "version: 2\n", "targets: [a, b:22, 'ssh://u:p@[::1]:22', localhost]\n",
		"groups:\n  - name: g\n    groups:\n      - name: h\n        targets: [{name: x, alias: [y], uri: 'h:1'}]\n    targets: [y]\n",
		"config: &c {ssh: {port: 22}}\ngroups:\n  - name: g\n    config: *c\n    targets: [a]\n",
		"vars:\n  <<: {a: 1}\n  b: 2\n", "a: b: c\n", "- x\n", "targets: [telnet://x]\n",
		"groups: [{name: a, targets: [a]}]\n", "facts: !!binary aGVsbG8=\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse("fuzz.yaml", data, Options{Warnf: func(string, ...any) {}})
		if err != nil {
			if err.Error() == "" || !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, tg := range inv.Targets() {
			if tg.Name == "" || seen[tg.Name] || tg.Transport == "" {
				t.Fatalf("bad target %+v", tg)
			}
			seen[tg.Name] = true
			if got, ok := inv.Target(tg.Name); !ok || got.Name != tg.Name {
				t.Fatalf("Target(%q) not found", tg.Name)
			}
			if u, err := ParseURI(tg.URI); tg.URI != "" && (err != nil || u.HasPassword) {
				t.Fatalf("URI %q: %v", tg.URI, err)
			}
		}
		for _, g := range inv.GroupNames() {
			if _, ok := inv.Group(g); !ok {
				t.Fatalf("Group(%q) missing", g)
			}
		}
		if all, _ := inv.Group("all"); len(all) != len(seen) {
			t.Fatalf("Group(all) has %d targets, Targets() %d", len(all), len(seen))
		}
		_, _ = inv.Adhoc("fuzz-host:22")
	})
}
