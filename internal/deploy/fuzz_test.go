package deploy

import (
	"strings"
	"testing"
)

// FuzzParse: any input parses or fails with an error naming the file; a
// parsed deployment has roles, acyclic requirements that name its roles,
// and plans.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		threeTier,
		"",
		"name: w\nroles:\n  a: {nodes: x, run: {command: c}, requires: b}\n  b: {nodes: x, run: {command: c}, requires: a}\n",
		"name: w\nroles:\n  a: &r {nodes: [x, y], run: {task: t, params: {p: [1, {q: null}]}}}\n  b: *r\n",
		"name: w\nroles:\n  a: {nodes: x, run: {plan: p}, requires: [{role: a, scope: any}]}\n",
		"name: w\nroles: {a: {nodes: 'x,,y', run: {command: c, env: {K: 1}}, on_active: {command: d}, on_node_change: {task: t}}}\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := Parse("f.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file: %v", err)
			}
			return
		}
		if len(d.Roles) == 0 || d.cycle() != nil {
			t.Fatalf("parsed a deployment without roles or with a cycle: %+v", d)
		}
		p, err := NewPlan(d, func(specs []string) ([]string, error) { return specs, nil })
		if err != nil {
			t.Fatalf("plan: %v", err)
		}
		for _, g := range p.Groups(p.Nodes) {
			for _, dep := range g.Deps {
				if p.Wave(dep.Role) >= p.Wave(g.Role) {
					t.Fatalf("%s depends on %s of a later wave", g.Role, dep.Role)
				}
			}
		}
	})
}
