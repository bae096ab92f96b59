package inventory

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/muster-run/muster"
)

// view is the part of a target the merge tests compare.
type view struct {
	Name, URI, Transport, Host, User string
	Port                             int
	Alias, Groups, Features          []string
}

func viewOf(t *muster.Target) view {
	return view{t.Name, t.URI, t.Transport, t.Host, t.User, t.Port, t.Alias, t.Groups, t.Features}
}

func mustLoad(t *testing.T, path string, opts Options) *Inventory {
	t.Helper()
	inv, err := Load(path, opts)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return inv
}

func mustTarget(t *testing.T, inv *Inventory, name string) *muster.Target {
	t.Helper()
	tg, ok := inv.Target(name)
	if !ok {
		t.Fatalf("target %q not found", name)
	}
	return tg
}

func TestMergeRules(t *testing.T) {
	inv := mustLoad(t, "testdata/merge.yaml", Options{})
	var names []string
	for _, tg := range inv.Targets() {
		names = append(names, tg.Name)
	}
	wantNames := []string{"web1.example.com", "web2.example.com", "shared", "dual.example.com",
		"win.example.com", "ssh://root@pw.example.com:2222", "db1", "localhost", "v6"}
	if d := cmp.Diff(wantNames, names); d != "" {
		t.Errorf("Targets() order (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"all", "parent", "child", "first", "second", "ssh_group", "winrm"}, inv.GroupNames()); d != "" {
		t.Errorf("GroupNames (-want +got):\n%s", d)
	}

	tests := []struct {
		name string
		want view
	}{
		{"web1.example.com", view{Name: "web1.example.com", URI: "web1.example.com", Transport: "ssh", Host: "web1.example.com",
			User: "child-user", Groups: []string{"child", "parent", "all"}, Features: []string{"all-feature", "child-feature", "shell"}}},
		{"web2.example.com", view{Name: "web2.example.com", URI: "web2.example.com", Transport: "ssh", Host: "web2.example.com",
			User: "parent-user", Groups: []string{"parent", "all"}, Features: []string{"all-feature", "shell"}}},
		// Earlier sibling ("first") wins over "second"; the target's own data wins over both.
		{"shared", view{Name: "shared", URI: "shared.example.com", Transport: "ssh", Host: "shared.example.com", User: "deploy",
			Port: 2201, Alias: []string{"sh"}, Groups: []string{"first", "second", "all"}, Features: []string{"all-feature", "shell"}}},
		// The counter-intuitive consequence: defined first under ssh_group, so ssh even in group winrm.
		{"dual.example.com", view{Name: "dual.example.com", URI: "dual.example.com", Transport: "ssh", Host: "dual.example.com",
			User: "sshuser", Groups: []string{"ssh_group", "winrm", "all"}, Features: []string{"all-feature", "shell"}}},
		{"win.example.com", view{Name: "win.example.com", URI: "win.example.com", Transport: "winrm", Host: "win.example.com",
			User: "Administrator", Groups: []string{"winrm", "all"}, Features: []string{"all-feature"}}},
		// URI components win; the password leaves Name and URI.
		{"ssh://root@pw.example.com:2222", view{Name: "ssh://root@pw.example.com:2222", URI: "ssh://root@pw.example.com:2222",
			Transport: "ssh", Host: "pw.example.com", User: "root", Port: 2222, Alias: []string{"pw"}, Groups: []string{"all"},
			Features: []string{"all-feature", "shell"}}},
		{"db1", view{Name: "db1", Transport: "ssh", Host: "db1.internal", User: "deploy", Port: 2200,
			Groups: []string{"all"}, Features: []string{"all-feature", "shell"}}},
		{"localhost", view{Name: "localhost", URI: "localhost", Transport: "local", Host: "localhost",
			Groups: []string{"all"}, Features: []string{"all-feature", "puppet-agent", "shell"}}},
		{"v6", view{Name: "v6", URI: "[::1]:2022", Transport: "ssh", Host: "::1", User: "deploy", Port: 2022,
			Groups: []string{"all"}, Features: []string{"all-feature", "shell"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, viewOf(mustTarget(t, inv, tc.name))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}

	t.Run("child overrides parent, deep config and facts, shallow vars", func(t *testing.T) {
		w := mustTarget(t, inv, "web1.example.com")
		want := map[string]any{"ssh": map[string]any{"user": "child-user", "tmpdir": "/tmp/parent"}}
		if d := cmp.Diff(want, w.Config); d != "" {
			t.Errorf("config (-want +got):\n%s", d)
		}
		wantVars := map[string]any{"env": "prod", "settings": map[string]any{"a": 10}, "level": "child"}
		if d := cmp.Diff(wantVars, w.Vars); d != "" {
			t.Errorf("vars (-want +got):\n%s", d)
		}
		wantFacts := map[string]any{"dc": map[string]any{"name": "ams", "rack": "r2"}}
		if d := cmp.Diff(wantFacts, w.Facts); d != "" {
			t.Errorf("facts (-want +got):\n%s", d)
		}
	})
	t.Run("earlier sibling wins, target overrides group", func(t *testing.T) {
		s := mustTarget(t, inv, "shared")
		wantVars := map[string]any{"env": "prod", "settings": map[string]any{"a": 1, "b": 2},
			"sibling": "first", "only_second": true, "target_wins": "target"}
		if d := cmp.Diff(wantVars, s.Vars); d != "" {
			t.Errorf("vars (-want +got):\n%s", d)
		}
		wantSSH := map[string]any{"user": "deploy", "tmpdir": "/tmp/all", "port": 2201, "connect-timeout": 30}
		if d := cmp.Diff(wantSSH, s.Config["ssh"]); d != "" {
			t.Errorf("config.ssh (-want +got):\n%s", d)
		}
	})
	t.Run("URI password goes to config.ssh only", func(t *testing.T) {
		p := mustTarget(t, inv, "ssh://root@pw.example.com:2222")
		want := map[string]any{"user": "root", "tmpdir": "/tmp/all", "port": 2222, "password": "s3cret"}
		if d := cmp.Diff(want, p.Config["ssh"]); d != "" {
			t.Errorf("config.ssh (-want +got):\n%s", d)
		}
	})
	t.Run("groups and aliases", func(t *testing.T) {
		ws, ok := inv.Group("parent")
		if !ok || len(ws) != 2 || ws[0].Name != "web1.example.com" || ws[1].Name != "web2.example.com" {
			t.Errorf("Group(parent) = %v, %v", ws, ok)
		}
		all, _ := inv.Group("all")
		if len(all) != len(wantNames) {
			t.Errorf("Group(all) has %d targets, want %d", len(all), len(wantNames))
		}
		// Running on group winrm still uses ssh for a target first defined under ssh_group.
		if wg, _ := inv.Group("winrm"); len(wg) != 2 || wg[0].Name != "dual.example.com" || wg[0].Transport != "ssh" || wg[1].Transport != "winrm" {
			t.Errorf("Group(winrm) = %+v", wg)
		}
		if _, ok := inv.Group("nope"); ok {
			t.Error("Group(nope) found")
		}
		if tg, ok := inv.ByAlias("sh"); !ok || tg.Name != "shared" {
			t.Errorf("ByAlias(sh) = %v, %v", tg, ok)
		}
		if _, ok := inv.ByAlias("shared"); ok {
			t.Error("ByAlias(shared) found a target name")
		}
	})
	t.Run("returned targets are copies", func(t *testing.T) {
		a := mustTarget(t, inv, "web1.example.com")
		a.Vars["env"] = "changed"
		a.Config["ssh"].(map[string]any)["user"] = "changed"
		b := mustTarget(t, inv, "web1.example.com")
		if b.Vars["env"] != "prod" || b.User != "child-user" || b.Config["ssh"].(map[string]any)["user"] != "child-user" {
			t.Errorf("mutation leaked: %v %v", b.Vars, b.Config)
		}
	})
}

func TestDefaultsPrecedence(t *testing.T) {
	opts := Options{Defaults: map[string]any{"ssh": map[string]any{"user": "cli", "port": 2222, "connect-timeout": 5}}}
	inv := mustLoad(t, "testdata/merge.yaml", opts)
	tests := []struct {
		name, user string
		port       int
		timeout    any
	}{
		{"web2.example.com", "parent-user", 2222, 5},        // inventory user over CLI; CLI port kept
		{"shared", "deploy", 2201, 30},                      // group over CLI
		{"ssh://root@pw.example.com:2222", "root", 2222, 5}, // URI over everything
		{"db1", "deploy", 2200, 5},                          // target over CLI
	}
	for _, tc := range tests {
		tg := mustTarget(t, inv, tc.name)
		got := []any{tg.User, tg.Port, tg.TransportConfig()["connect-timeout"]}
		if d := cmp.Diff([]any{tc.user, tc.port, tc.timeout}, got); d != "" {
			t.Errorf("%s: user/port/timeout (-want +got):\n%s", tc.name, d)
		}
	}
	if opts.Defaults["ssh"].(map[string]any)["user"] != "cli" {
		t.Error("Defaults were modified")
	}
}

func TestAdhoc(t *testing.T) {
	src := `
config: {ssh: {user: deploy, port: 2200}}
vars: {env: prod}
features: [f1]
groups:
  - name: web
    vars: {env: web}
    targets: [web1]
`
	inv, err := Parse("inventory.yaml", []byte(src), Options{Defaults: map[string]any{"ssh": map[string]any{"user": "cli", "private-key": "k"}}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		uri  string
		want view
	}{
		{"host1", view{Name: "host1", URI: "host1", Transport: "ssh", Host: "host1", User: "deploy", Port: 2200,
			Groups: []string{"all"}, Features: []string{"f1", "shell"}}},
		{"host1:2222", view{Name: "host1:2222", URI: "host1:2222", Transport: "ssh", Host: "host1", User: "deploy", Port: 2222,
			Groups: []string{"all"}, Features: []string{"f1", "shell"}}},
		{"ssh://bob:pw@host2:22", view{Name: "ssh://bob@host2:22", URI: "ssh://bob@host2:22", Transport: "ssh", Host: "host2",
			User: "bob", Port: 22, Groups: []string{"all"}, Features: []string{"f1", "shell"}}},
		{"alice@[2001:db8::1]:2022", view{Name: "alice@[2001:db8::1]:2022", URI: "alice@[2001:db8::1]:2022", Transport: "ssh",
			Host: "2001:db8::1", User: "alice", Port: 2022, Groups: []string{"all"}, Features: []string{"f1", "shell"}}},
		{"local://", view{Name: "local://", URI: "local://", Transport: "local", Groups: []string{"all"}, Features: []string{"f1", "shell"}}},
		{"localhost", view{Name: "localhost", URI: "localhost", Transport: "local", Host: "localhost",
			Groups: []string{"all"}, Features: []string{"f1", "puppet-agent", "shell"}}},
	}
	for _, tc := range tests {
		tg, err := inv.Adhoc(tc.uri)
		if err != nil {
			t.Errorf("Adhoc(%q): %v", tc.uri, err)
			continue
		}
		if d := cmp.Diff(tc.want, viewOf(tg)); d != "" {
			t.Errorf("Adhoc(%q) (-want +got):\n%s", tc.uri, d)
		}
		if tg.Vars["env"] != "prod" {
			t.Errorf("Adhoc(%q) vars = %v, want the all group's", tc.uri, tg.Vars)
		}
		if tg.Transport == "ssh" && tg.Config["ssh"].(map[string]any)["private-key"] != "k" {
			t.Errorf("Adhoc(%q) lost the CLI default: %v", tc.uri, tg.Config)
		}
	}
	for _, bad := range []string{"", "a b", "host:0", "host:x", "::1", "ssh://u:hunter2@h:99999", "1ssh://h", "h\x00"} {
		_, err := inv.Adhoc(bad)
		if err == nil {
			t.Errorf("Adhoc(%q) succeeded", bad)
		} else if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Adhoc(%q) error shows the password: %v", bad, err)
		}
	}
	if tg, err := inv.Adhoc("web1"); err != nil || tg.Vars["env"] != "web" {
		t.Errorf("Adhoc(inventory name) = %+v, %v; want the inventory target", tg, err)
	}
	e := Empty(Options{})
	if tg, err := e.Adhoc("web9:22"); err != nil || tg.Host != "web9" || tg.Port != 22 || len(e.Targets()) != 0 || e.File() != "" {
		t.Errorf("Empty().Adhoc = %+v, %v", tg, err)
	}
}

func TestLocalhostRules(t *testing.T) {
	tests := []struct {
		name     string
		inv      string
		defaults map[string]any
		uri      string
		want     string // transport
		user     string
	}{
		// Bolt's localhost defaults sit below group data for a localhost the
		// inventory defines: an all-level transport wins, as written.
		{name: "defined, all-level ssh", inv: "config: {transport: ssh}\ntargets: [localhost]\n", uri: "localhost", want: "ssh"},
		{name: "defined, no transport", inv: "targets: [localhost]\n", uri: "localhost", want: "local"},
		{name: "defined with its own transport", inv: "targets: [{name: localhost, config: {transport: ssh}}]\n", uri: "localhost", want: "ssh"},
		// An ad-hoc localhost always runs locally, and still gets group all's data.
		{name: "ad-hoc, all-level ssh", inv: "config: {transport: ssh, local: {user: me}}\ntargets: [web1]\n", uri: "localhost", want: "local", user: "me"},
		{name: "ad-hoc, CLI default ssh", defaults: map[string]any{"transport": "ssh"}, uri: "localhost", want: "local"},
		{name: "ad-hoc local://", inv: "config: {transport: ssh}\n", uri: "local://", want: "local"},
		{name: "ad-hoc ssh://localhost", inv: "config: {transport: local}\n", uri: "ssh://localhost", want: "ssh"},
		{name: "ad-hoc user@localhost is remote", inv: "config: {transport: ssh}\n", uri: "me@localhost", want: "ssh", user: "me"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv := Empty(Options{Defaults: tc.defaults})
			if tc.inv != "" {
				var err error
				if inv, err = Parse("inventory.yaml", []byte(tc.inv), Options{Defaults: tc.defaults}); err != nil {
					t.Fatal(err)
				}
			}
			tg, err := inv.Adhoc(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			if tg.Transport != tc.want || tg.User != tc.user {
				t.Errorf("Adhoc(%q) transport %q user %q, want %q %q", tc.uri, tg.Transport, tg.User, tc.want, tc.user)
			}
			if tg.Name == "localhost" && !tg.HasFeature("puppet-agent") {
				t.Errorf("localhost features %v", tg.Features)
			}
		})
	}
}

func TestIsEmptyAndNames(t *testing.T) {
	for _, tc := range []struct {
		src   string
		empty bool
		names []string
	}{
		{"", true, []string{"all"}},
		{"vars: {a: 1}\nconfig: {transport: ssh}\n", true, []string{"all"}},
		{"groups: [{name: web}]\n", false, []string{"all", "web"}},
		{"targets: [{name: a, alias: [x, y]}, b]\ngroups: [{name: g, targets: [{name: c, alias: z}]}]\n", false,
			[]string{"all", "g", "a", "b", "c", "x", "y", "z"}},
	} {
		inv, err := Parse("inventory.yaml", []byte(tc.src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if inv.IsEmpty() != tc.empty {
			t.Errorf("%q: IsEmpty = %v", tc.src, inv.IsEmpty())
		}
		if d := cmp.Diff(tc.names, inv.Names()); d != "" {
			t.Errorf("%q: Names (-want +got):\n%s", tc.src, d)
		}
	}
	if !Empty(Options{}).IsEmpty() {
		t.Error("Empty() is not empty")
	}
}

func TestSameTargetManyPlaces(t *testing.T) {
	src := `
groups:
  - name: a
    targets:
      - {name: t1, uri: "h1", vars: {x: a, only_a: 1}, alias: [one]}
  - name: b
    targets:
      - {name: t1, vars: {x: b, only_b: 2}, config: {ssh: {port: 2000}}, alias: [uno]}
      - t1
      - uno
targets:
  - {name: t1, vars: {x: top, only_top: 3}}
`
	inv, err := Parse("inventory.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(inv.Targets()); n != 1 {
		t.Fatalf("got %d targets, want 1", n)
	}
	tg := mustTarget(t, inv, "t1")
	want := view{Name: "t1", URI: "h1", Transport: "ssh", Host: "h1", Port: 2000, Alias: []string{"uno", "one"}, // Bolt's data_merge order
		Groups: []string{"a", "b", "all"}, Features: []string{"shell"}}
	if d := cmp.Diff(want, viewOf(tg)); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	// Target-level data: group a's definition is earlier, both beat the top-level one.
	wantVars := map[string]any{"x": "a", "only_a": 1, "only_b": 2, "only_top": 3}
	if d := cmp.Diff(wantVars, tg.Vars); d != "" {
		t.Errorf("vars (-want +got):\n%s", d)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown group key", "groups:\n  - name: web\n    tragets: [a]\n",
			`inventory.yaml:3: group "web": unknown key "tragets"`},
		{"unknown top key", "version: 2\ntarget: [a]\n", `inventory.yaml:2: unknown key "target"`},
		{"v1 nodes", "groups:\n  - name: web\n    nodes: [a]\n", `inventory.yaml:3: group "web": unknown key "nodes" (this looks like a version 1 inventory; rename "nodes" to "targets")`},
		{"unknown target key", "targets:\n  - name: a\n    confg: {}\n", `inventory.yaml:3: target "a": unknown key "confg"`},
		{"invalid yaml", "groups:\n  - name: web\n   targets: [a]\n", `inventory.yaml:3: invalid YAML: did not find expected '-' indicator`},
		{"yaml parser error", "a:\n  b: 1\n c: 2\n", `inventory.yaml:3: invalid YAML: did not find expected key`},
		{"unclosed flow", "vars: {a: 1}\ntargets: [a,\n  b\nfacts: {}\n", `inventory.yaml:3: invalid YAML: did not find expected ',' or ']'`},
		{"tab yaml", "targets:\n\t- a\n", `inventory.yaml:2: invalid YAML: found character that cannot start any token`},
		{"duplicate alias", "targets:\n  - {name: a, alias: x}\n  - name: b\n    alias: [y, x]\n",
			`inventory.yaml:4: duplicate alias "x": target "b", already an alias of target "a" at line 2`},
		{"alias clashes with target", "targets:\n  - {name: a}\n  - {name: b, alias: a}\n",
			`inventory.yaml:3: alias "a" of target "b" clashes with the target of the same name at line 2`},
		{"alias clashes with group", "groups:\n  - name: web\ntargets:\n  - {name: b, alias: web}\n",
			`inventory.yaml:2: group name "web" clashes with an alias of target "b" at line 4`},
		{"alias clashes with later group", "groups:\n  - name: g\n    targets: [{name: b, alias: web}]\n  - name: web\n",
			`inventory.yaml:4: group name "web" clashes with an alias of target "b" at line 3`},
		{"alias clashes with earlier group", "groups:\n  - name: web\n  - name: g\n    targets: [{name: b, alias: web}]\n",
			`inventory.yaml:4: alias "web" of target "b" clashes with the group of the same name at line 2`},
		{"group clashes with target", "targets: [web]\ngroups:\n  - name: web\n",
			`inventory.yaml:3: group name "web" clashes with the target of the same name at line 1`},
		{"target clashes with group", "groups:\n  - name: web\n    targets: [web]\n",
			`inventory.yaml:3: target name "web" clashes with the group of the same name at line 2`},
		{"duplicate group", "groups:\n  - name: web\n    groups:\n      - name: web\n",
			`inventory.yaml:4: duplicate group name "web" (first defined at line 2)`},
		{"group named all", "groups:\n  - name: all\n", `inventory.yaml:2: duplicate group name "all" (first defined at line 1)`},
		{"group name space", "groups:\n  - name: my web\n", `inventory.yaml:2: invalid group name "my web": must not contain whitespace or control characters`},
		{"group name comma", "groups:\n  - name: a,b\n", `inventory.yaml:2: invalid group name "a,b": must not contain commas`},
		{"group name non-ascii", "groups:\n  - name: wéb\n", `inventory.yaml:2: invalid group name "wéb": must be ASCII`},
		{"alias non-ascii", "targets:\n  - {name: a, alias: ü}\n", `inventory.yaml:2: target "a": invalid alias "ü": must be ASCII`},
		{"group without name", "groups:\n  - targets: [a]\n", `inventory.yaml:2: group has no name`},
		{"version 1", "version: 1\n", `inventory.yaml:1: unsupported inventory version "1": only version 2 is supported`},
		{"vars list", "groups:\n  - name: web\n    vars: [1]\n", `inventory.yaml:3: group "web": vars must be a mapping, not a list`},
		{"facts string", "facts: x\n", `inventory.yaml:1: facts must be a mapping, not a string`},
		{"features map", "features: {a: 1}\n", `inventory.yaml:1: features must be a list, not a mapping`},
		{"target not name", "targets:\n  - [a]\n", `inventory.yaml:2: each target must be a string or a mapping, not a list`},
		{"target no name or uri", "targets:\n  - vars: {a: 1}\n", `inventory.yaml:2: target needs a name or a uri`},
		{"target name int", "targets:\n  - name: 12\n", `inventory.yaml:2: target name must be a string, not an integer`},
		{"port type", "config:\n  ssh:\n    port: twenty\n", `inventory.yaml:3: config.ssh.port must be an integer from 1 to 65535`},
		{"transport unknown", "config: {transport: telnet}\n", `inventory.yaml:1: unknown transport "telnet"`},
		{"uri scheme unknown", "targets: [\"telnet://h\"]\n", `inventory.yaml:1: target "telnet://h": unknown transport "telnet"`},
		{"bad uri port", "targets:\n  - uri: ssh://root:hunter2@h:99999\n", `inventory.yaml:2: target uri "ssh://root@h:99999": uri has an invalid port (want 1-65535)`},
		{"duplicate key", "vars: {a: 1}\nvars: {b: 2}\n", `inventory.yaml:2: duplicate key "vars" (first at line 1)`},
		{"plugin targets", "targets:\n  _plugin: yaml\n", `inventory.yaml:2: plugin "yaml" (targets): parameter "filepath" is required`},
		{"unknown plugin", "groups:\n  - name: g\n    config:\n      ssh:\n        password: {_plugin: vault, path: x}\n",
			`inventory.yaml:5: unknown plugin "vault"; supported plugins: env_var, pkcs7, prompt, puppetdb, task, terraform, yaml`},
		{"plugin name not a string", "vars:\n  x:\n    _plugin: [yaml]\n", `inventory.yaml:3: _plugin must be a plugin name (a string), not a list`},
		{"not a mapping", "- a\n", `inventory.yaml:1: inventory must be a mapping, not a list`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("inventory.yaml", []byte(tc.src), Options{})
			if err == nil {
				t.Fatalf("no error, want %s", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
			if muster.KindOf(err) != muster.KindInvalid {
				t.Errorf("kind = %q", muster.KindOf(err))
			}
			var ie *Error
			if !errors.As(err, &ie) || ie.File != "inventory.yaml" {
				t.Errorf("not an *Error naming the file: %#v", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("password in error: %s", err)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	_, err := Load("testdata/missing.yaml", Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/missing.yaml: cannot read inventory") {
		t.Errorf("Load(missing) = %v", err)
	}
	_, err = Load("testdata/bad.yaml", Options{})
	if want := `testdata/bad.yaml:6: group "web": unknown key "tragets"`; err == nil || err.Error() != want {
		t.Errorf("Load(bad) = %v, want %s", err, want)
	}
}

func TestWarnings(t *testing.T) {
	var warns []string
	src := "name: mine\nplugin_hooks: {puppet_library: {plugin: puppet_agent}}\nvars:\n  secret: {_plugin: env_var, var: X}\n"
	_, err := Parse("inv.yaml", []byte(src), Options{Warnf: func(f string, a ...any) {
		warns = append(warns, f)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "name") {
		t.Errorf("warnings = %q", warns)
	}
}

func TestYAMLFeatures(t *testing.T) {
	src := `
x-common: &common
  ssh: {user: anchored, port: 2022}
config:
  <<: *common
  transport: ssh
targets: [a]
`
	_, err := Parse("inventory.yaml", []byte(src), Options{})
	if err == nil || err.Error() != `inventory.yaml:2: unknown key "x-common"` {
		t.Fatalf("got %v", err)
	}
	src = "groups:\n  - name: g\n    config: &c {ssh: {user: u1}}\n    targets: [a]\n  - name: h\n    config: *c\n    targets: [b]\n"
	inv, err := Parse("inventory.yaml", []byte(src), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if b := mustTarget(t, inv, "b"); b.User != "u1" {
		t.Errorf("alias config: user = %q", b.User)
	}
	if inv, err := Parse("e.yaml", nil, Options{}); err != nil || len(inv.Targets()) != 0 || len(inv.GroupNames()) != 1 {
		t.Errorf("empty file: %v", err)
	}
}

func TestRedact(t *testing.T) {
	tests := map[string]string{
		"ssh://u:pw@h:22":         "ssh://u@h:22",
		"u:pw@h, ssh://a:b@c x@y": "u@h, ssh://a@c x@y",
		"plain host:22":           "plain host:22",
		"ssh://u:p@ss@h":          "ssh://u@h",
	}
	for in, want := range tests {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
