package deploy

import (
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func TestHooksDerivedFromRuns(t *testing.T) {
	d, err := Parse("d.yaml", []byte(`name: w
roles:
  db: {nodes: 'a,b', run: {command: c}}
  app:
    nodes: 'a,b,c'
    run: {command: c}
    requires: db
    on_active: {command: up}
    on_node_change: {command: changed}
`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(d, resolver)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	ok := func(id int64, fin int) Run { return Run{RunID: id, State: muster.RunSucceeded, FinishedAt: at(fin)} }
	failed := func(id int64, fin int) Run { return Run{RunID: id, State: muster.RunFailed, FinishedAt: at(fin)} }
	for _, tc := range []struct {
		name string
		runs map[string]Run
		done string // keys already submitted, space-separated
		want string // hook keys, space-separated
	}{
		{"nothing active", map[string]Run{"db@a": {RunID: 1, State: muster.RunRunning}}, "", ""},
		{"active once each", map[string]Run{"db@a": ok(1, 1), "app@a": ok(3, 2), "app@c": {RunID: 4, State: muster.RunRunning}}, "",
			"on_active|app@a"},
		{"done is not repeated", map[string]Run{"db@a": ok(1, 1), "app@a": ok(3, 2)}, "on_active|app@a", ""},
		// db on b changed after app was in place on a and c: both hear
		// it; b does not hear of its own node.
		{"another node changed", map[string]Run{"db@a": ok(1, 1), "db@b": ok(2, 9), "app@a": ok(3, 2), "app@b": ok(5, 10), "app@c": ok(4, 3)},
			"on_active|app@a on_active|app@b on_active|app@c",
			"on_node_change|app@a|db@b=active#2 on_node_change|app@c|db@b=active#2"},
		// A change before the node's own role was active is not news.
		{"change before mine", map[string]Run{"db@a": ok(1, 5), "db@b": ok(2, 1), "app@a": ok(3, 6), "app@c": ok(4, 2)},
			"on_active|app@a on_active|app@c", "on_node_change|app@c|db@a=active#1"},
		{"an error is a change too", map[string]Run{"db@a": ok(1, 1), "db@b": failed(2, 9), "app@a": ok(3, 2)},
			"on_active|app@a", "on_node_change|app@a|db@b=error#2"},
		{"the same run retried to success is a new change", map[string]Run{"db@a": ok(1, 1), "db@b": ok(2, 12), "app@a": ok(3, 2)},
			"on_active|app@a on_node_change|app@a|db@b=error#2", "on_node_change|app@a|db@b=active#2"},
		{"blocked and waiting are no change", map[string]Run{"db@a": ok(1, 1), "db@b": {RunID: 2, State: muster.RunWaiting}, "app@a": ok(3, 2),
			"app@b": {RunID: 5, State: muster.RunBlocked}}, "on_active|app@a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := map[string]bool{}
			for _, k := range strings.Fields(tc.done) {
				done[k] = true
			}
			var got []string
			for _, h := range Hooks(p, tc.runs, func(k string) bool { return done[k] }) {
				got = append(got, h.Key())
				// The key a job tagged as the hook would give back.
				env := map[string]string{EnvHook: h.Name, EnvRole: h.Role}
				for k, v := range h.Env {
					env[k] = v
				}
				if HookKey(env, h.Node) != h.Key() {
					t.Errorf("HookKey of %s's tags is %s", h.Key(), HookKey(env, h.Node))
				}
			}
			if g := strings.Join(got, " "); g != tc.want {
				t.Errorf("hooks\n got %s\nwant %s", g, tc.want)
			}
		})
	}
	if HookKey(map[string]string{EnvRole: "app"}, "a") != "" {
		t.Error("a role's own job has a hook key")
	}
}
