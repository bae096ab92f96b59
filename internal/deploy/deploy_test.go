package deploy

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/yamlnode"
)

const threeTier = `name: web
roles:
  lb:
    nodes: web
    requires: app
    run: {command: 'reload lb'}
  db:
    nodes: [db1, db2]
    run: {task: mysql::install, params: {version: "8.0", port: 3306}}
    on_active: {command: 'echo up'}
  app:
    nodes: 'web1,web2,db1'
    requires:
      - db
      - {role: cache, scope: any}
    run: {plan: app::deploy}
  cache:
    nodes: cache1
    run: {command: 'true', env: {A: b}}
`

// resolver expands "web" to web1,web2 and takes other specs as names.
func resolver(specs []string) ([]string, error) {
	var out []string
	for _, s := range specs {
		switch s {
		case "web":
			out = append(out, "web1", "web2")
		case "none":
		case "bad":
			return nil, errors.New("unknown target \"bad\"")
		default:
			out = append(out, s)
		}
	}
	return out, nil
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"empty", "", "d.yaml: empty deployment"},
		{"not a mapping", "- a\n", "d.yaml:1: the deployment must be a mapping"},
		{"no name", "roles: {a: {nodes: x, run: {command: c}}}\n", "name: missing"},
		{"bad name", "name: Web!\nroles: {}\n", "d.yaml:1: name: \"Web!\" is not a deployment name"},
		{"unknown top", "name: w\nrole: {}\n", "d.yaml:2: unknown field \"role\""},
		{"no roles", "name: w\n", "roles: missing"},
		{"roles list", "name: w\nroles: [a]\n", "d.yaml:2: roles: want a mapping"},
		{"no run", "name: w\nroles:\n  a:\n    nodes: x\n", "d.yaml:4: roles.a.run: missing"},
		{"no nodes", "name: w\nroles:\n  a:\n    run: {command: c}\n", "roles.a.nodes: missing"},
		{"two kinds", "name: w\nroles:\n  a:\n    nodes: x\n    run: {command: c, task: t}\n", "d.yaml:5: roles.a.run: command and task are exclusive"},
		{"no kind", "name: w\nroles:\n  a:\n    nodes: x\n    run: {params: {}}\n", "roles.a.run: want one of command, task or plan"},
		{"command params", "name: w\nroles:\n  a:\n    nodes: x\n    run: {command: c, params: {a: 1}}\n", "roles.a.run.params: a command takes no params"},
		{"unknown role field", "name: w\nroles:\n  a:\n    nodes: x\n    run: {command: c}\n    after: b\n", "d.yaml:6: roles.a: unknown field \"after\""},
		{"unknown required", "name: w\nroles:\n  a:\n    nodes: x\n    run: {command: c}\n    requires: [b]\n", "d.yaml:6: roles.a.requires: no role \"b\""},
		{"self", "name: w\nroles:\n  a:\n    nodes: x\n    run: {command: c}\n    requires: a\n", "a role cannot require itself"},
		{"bad scope", "name: w\nroles:\n  a:\n    nodes: x\n    run: {command: c}\n    requires: [{role: a, scope: rack}]\n", "d.yaml:6: roles.a.requires[0].scope: \"rack\" is not a scope"},
		{"twice", "name: w\nroles:\n  a: {nodes: x, run: {command: c}}\n  b: {nodes: x, run: {command: c}, requires: [a, a]}\n", "requires[1]: role \"a\" is required twice"},
		{"priority type", "name: w\nroles:\n  a: {nodes: x, run: {command: c}, priority: high}\n", "roles.a.priority: want an integer, got a string"},
		{"retries range", "name: w\nroles:\n  a: {nodes: x, run: {command: c}, retries: 1000}\n", "roles.a.retries: 1000 is out of range"},
		{"reserved env", "name: w\nroles:\n  a: {nodes: x, run: {command: c, env: {MUSTER_ROLE: x}}}\n", "MUSTER_ variables are set by muster"},
		{"duplicate role", "name: w\nroles:\n  a: {nodes: x, run: {command: c}}\n  a: {nodes: x, run: {command: c}}\n", "d.yaml:4: roles: \"a\" is defined twice"},
		{"cycle", "name: w\nroles:\n  a: {nodes: x, run: {command: c}, requires: c}\n  b: {nodes: x, run: {command: c}, requires: a}\n  c: {nodes: x, run: {command: c}, requires: b}\n",
			"d.yaml:3: requires: a cycle: a -> c -> b -> a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("d.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if muster.KindOf(err) != muster.KindInvalid {
				t.Errorf("kind %q, want invalid", muster.KindOf(err))
			}
			var ye *yamlnode.Error
			if !errors.As(err, &ye) || ye.File != "d.yaml" {
				t.Errorf("not located in d.yaml: %#v", err)
			}
		})
	}
}

func TestParseThreeTier(t *testing.T) {
	d, err := Parse("web.yaml", []byte(threeTier))
	if err != nil {
		t.Fatal(err)
	}
	db, app := d.Role("db"), d.Role("app")
	if db.Run.Kind != muster.JobTask || db.Run.Spec.Params["port"] != float64(3306) || db.OnActive == nil || db.Line != 7 {
		t.Errorf("db: %+v", db)
	}
	if fmt.Sprint(app.Nodes) != "[web1 web2 db1]" || fmt.Sprint(app.Requires) != "[{db node 14} {cache any 15}]" {
		t.Errorf("app: nodes %v requires %v", app.Nodes, app.Requires)
	}
	if d.Role("cache").Run.Spec.Env["A"] != "b" {
		t.Errorf("cache env: %v", d.Role("cache").Run.Spec.Env)
	}
	d2, _ := Parse("web.yaml", []byte(strings.Replace(threeTier, "reload lb", "reload lb2", 1)))
	if d.Role("db").Digest() != d2.Role("db").Digest() || d.Role("lb").Digest() == d2.Role("lb").Digest() {
		t.Error("digests: a role's changes must change its digest, and only its")
	}
}

func TestPlanWavesAndGroups(t *testing.T) {
	d, err := Parse("web.yaml", []byte(threeTier))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(d, resolver)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(p.Waves); got != "[[db cache] [app] [lb]]" {
		t.Errorf("waves %s", got)
	}
	var keys []string
	for _, nr := range p.NodeRoles {
		keys = append(keys, fmt.Sprintf("%d:%s", nr.Wave, nr.Key()))
	}
	if got := strings.Join(keys, " "); got != "0:db@db1 0:db@db2 0:cache@cache1 1:app@web1 1:app@web2 1:app@db1 2:lb@web1 2:lb@web2" {
		t.Errorf("node-roles %s", got)
	}
	for _, tc := range []struct {
		name string
		want map[string][]string
		out  string
	}{
		{"all", p.Nodes, "db[db1 db2] each=false [] | cache[cache1] each=false [] | " +
			// web1, web2 lack db: they wait for db everywhere (and cache);
			// db1 has db: it waits for its own db, and for cache anywhere.
			"app[web1 web2] each=false [{db false} {cache false}] | app[db1] each=false [{db true} {cache false}] | " +
			"lb[web1 web2] each=true [{app true}]"},
		{"lb only", map[string][]string{"lb": {"web2"}}, "lb[web2] each=true [{app true}]"},
		{"none", map[string][]string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var parts []string
			for _, g := range p.Groups(tc.want) {
				parts = append(parts, fmt.Sprintf("%s%v each=%t %v", g.Role, g.Nodes, g.AfterEach, g.Deps))
			}
			if got := strings.Join(parts, " | "); got != tc.out {
				t.Errorf("groups\n got %s\nwant %s", got, tc.out)
			}
		})
	}
}

func TestPlanResolveErrors(t *testing.T) {
	for _, tc := range []struct{ nodes, want string }{
		{"none", "d.yaml:3: roles.a.nodes: no nodes: \"none\" match no target"},
		{"bad", "d.yaml:3: roles.a.nodes: unknown target \"bad\""},
	} {
		d, err := Parse("d.yaml", []byte("name: w\nroles:\n  a: {nodes: "+tc.nodes+", run: {command: c}}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := NewPlan(d, resolver); err == nil || !strings.Contains(err.Error(), tc.want) || muster.KindOf(err) != muster.KindInvalid {
			t.Errorf("%s: error %v, want %q", tc.nodes, err, tc.want)
		}
	}
}

func TestSelectHoldsWhatSkippedNodesBlock(t *testing.T) {
	d, _ := Parse("web.yaml", []byte(threeTier))
	p, _ := NewPlan(d, resolver)
	all := func(except ...string) map[string]bool {
		m := map[string]bool{}
		for _, nr := range p.NodeRoles {
			m[nr.Key()] = true
		}
		for _, k := range except {
			delete(m, k)
		}
		return m
	}
	for _, tc := range []struct {
		name                string
		candidates, present map[string]bool
		submit, held        string
	}{
		{"everything", all(), nil, "map[app:[web1 web2 db1] cache:[cache1] db:[db1 db2] lb:[web1 web2]]", "map[]"},
		// db2 is not alive: app on the nodes without db (web1, web2)
		// waits for db everywhere, so it is held, and lb after it; app
		// on db1 needs only db on db1 (and cache anywhere): it goes.
		{"db2 skipped", all("db@db2"), nil, "map[app:[db1] cache:[cache1] db:[db1]]",
			"map[app@web1:requires db everywhere; db on db2 is not submitted " +
				"app@web2:requires db everywhere; db on db2 is not submitted lb@web1:requires app on web1, which is not submitted " +
				"lb@web2:requires app on web2, which is not submitted]"},
		{"retry lb only", map[string]bool{"lb@web2": true}, all("lb@web2"), "map[lb:[web2]]", "map[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.present == nil {
				tc.present = map[string]bool{}
			}
			sub, held := p.Select(tc.candidates, tc.present)
			if got := fmt.Sprint(sub); got != tc.submit {
				t.Errorf("submit\n got %s\nwant %s", got, tc.submit)
			}
			if got := fmt.Sprint(held); got != tc.held {
				t.Errorf("held\n got %s\nwant %s", got, tc.held)
			}
		})
	}
}

func TestStateFromRuns(t *testing.T) {
	for _, tc := range []struct {
		run  muster.RunState
		want State
	}{
		{muster.RunWaiting, Blocked}, {muster.RunBlocked, Blocked}, {muster.RunScheduled, Todo}, {muster.RunPending, Todo},
		{muster.RunRunning, Transition}, {muster.RunRetrying, Transition}, {muster.RunSucceeded, Active},
		{muster.RunFailed, Error}, {muster.RunCancelled, Error}, {"", Proposed},
	} {
		if got := FromRun(tc.run); got != tc.want {
			t.Errorf("FromRun(%q) = %s, want %s", tc.run, got, tc.want)
		}
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		last time.Time
		want bool
	}{{now.Add(-time.Minute), true}, {now.Add(-time.Hour), false}, {time.Time{}, false}} {
		if got := Alive(tc.last, now, 30*time.Minute); got != tc.want {
			t.Errorf("Alive(%v) = %t", tc.last, got)
		}
	}
}

func TestStatusTree(t *testing.T) {
	d, _ := Parse("d.yaml", []byte("name: w\nroles:\n  db: {nodes: 'a,b,c', run: {command: c}}\n  app: {nodes: 'a,b,c', run: {command: c}, requires: db}\n"))
	p, _ := NewPlan(d, resolver)
	for _, tc := range []struct {
		name    string
		runs    map[string]Run
		dead    string
		counts  string
		settled bool
	}{
		{"nothing applied", nil, "", "map[proposed:6]", false},
		{"c dead", map[string]Run{"db@a": {State: muster.RunSucceeded}, "db@b": {State: muster.RunRunning}, "app@a": {State: muster.RunPending},
			"app@b": {State: muster.RunWaiting}}, "c", "map[active:1 blocked:1 skipped:2 todo:1 transition:1]", false},
		{"one failed", map[string]Run{"db@a": {State: muster.RunSucceeded}, "db@b": {State: muster.RunFailed, Error: "exit 1"},
			"db@c": {State: muster.RunSucceeded}, "app@a": {State: muster.RunSucceeded}, "app@b": {State: muster.RunBlocked, Error: "db failed"},
			"app@c": {State: muster.RunSucceeded}}, "", "map[active:4 blocked:1 error:1]", true},
		{"waiting only", map[string]Run{"db@a": {State: muster.RunSucceeded}, "db@b": {State: muster.RunSucceeded}, "db@c": {State: muster.RunSucceeded},
			"app@a": {State: muster.RunWaiting}, "app@b": {State: muster.RunSucceeded}, "app@c": {State: muster.RunSucceeded}}, "", "map[active:5 blocked:1]", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := NewStatus(p, tc.runs, func(n string) bool { return n != tc.dead })
			if got := fmt.Sprint(st.Counts); got != tc.counts {
				t.Errorf("counts %s, want %s", got, tc.counts)
			}
			if st.Settled() != tc.settled {
				t.Errorf("settled %t, want %t", st.Settled(), tc.settled)
			}
			if len(st.Roles) != 2 || st.Roles[1].Role != "app" || len(st.Roles[1].Nodes) != 3 {
				t.Errorf("tree: %+v", st.Roles)
			}
		})
	}
	st := NewStatus(p, map[string]Run{"db@a": {State: muster.RunFailed, Error: "exit 1"}, "app@a": {State: muster.RunWaiting}}, func(string) bool { return true })
	if st.Roles[0].Nodes[0].Reason != "exit 1" || st.Roles[1].Nodes[0].Reason != "waiting for db" {
		t.Errorf("reasons: %+v %+v", st.Roles[0].Nodes[0], st.Roles[1].Nodes[0])
	}
}
