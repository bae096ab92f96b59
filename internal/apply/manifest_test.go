package apply

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
)

// steps decodes a resources list as a YAML plan holds it.
func steps(t *testing.T, src string) any {
	t.Helper()
	var v any
	if err := yaml.Unmarshal([]byte(src), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestResourcesManifest(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"type and title", `[{type: package, title: nginx, parameters: {ensure: present}}]`,
			"package { 'nginx':\n  ensure => 'present',\n}\n"},
		{"shorthand", `[{package: nginx, parameters: {ensure: latest}}]`,
			"package { 'nginx':\n  ensure => 'latest',\n}\n"},
		{"no parameters", `[{service: nginx}]`, "service { 'nginx':\n}\n"},
		{"null parameters", `[{service: nginx, parameters: }]`, "service { 'nginx':\n}\n"},
		{"chained in order, attributes sorted", `
- file: /etc/motd
  parameters: {mode: '0644', content: "hi\n", ensure: file}
- service: sshd
  parameters: {ensure: running, enable: true}`,
			"file { '/etc/motd':\n  content => \"hi\\n\",\n  ensure => 'file',\n  mode => '0644',\n}\n->\nservice { 'sshd':\n  enable => true,\n  ensure => 'running',\n}\n"},
		{"quotes and backslashes", `[{notify: "it's a \\ test", parameters: {message: 'say "hi" $x'}}]`,
			"notify { 'it\\'s a \\\\ test':\n  message => 'say \"hi\" $x',\n}\n"},
		{"control characters go double-quoted without interpolation", `[{notify: x, parameters: {message: "a\tb\u0007$c\"d"}}]`,
			"notify { 'x':\n  message => \"a\\tb\\u{7}\\$c\\\"d\",\n}\n"},
		{"numbers, booleans, undef", `[{thing: x, parameters: {a: 1, b: -2.5, c: 3.0, d: 1e21, e: false, f: null}}]`,
			"thing { 'x':\n  a => 1,\n  b => -2.5,\n  c => 3.0,\n  d => 1e21,\n  e => false,\n  f => undef,\n}\n"},
		{"arrays and hashes", `[{user: deploy, parameters: {groups: [adm, sudo], env: {B: 2, A: [x]}, none: []}}]`,
			"user { 'deploy':\n  env => {'A' => ['x'], 'B' => 2},\n  groups => ['adm', 'sudo'],\n  none => [],\n}\n"},
		{"numeric title", `[{user: 1000}]`, "user { '1000':\n}\n"},
		{"namespaced type and class", `[{"mymod::thing": a}, {class: apache, parameters: {port: 80}}]`,
			"mymod::thing { 'a':\n}\n->\nclass { 'apache':\n  port => 80,\n}\n"},
		{"a resource reference as a string", `[{service: nginx, parameters: {require: "Package[nginx]"}}]`,
			"service { 'nginx':\n  require => 'Package[nginx]',\n}\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ResourcesManifest(steps(t, c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got\n%s\nwant\n%s", got, c.want)
			}
		})
	}
}

func TestResourcesErrors(t *testing.T) {
	cases := []struct {
		name, yaml, want, field string
		index                   int
	}{
		{"not a list", `{package: nginx}`, "resources: want a list of resource declarations, got Hash", "resources", -1},
		{"not a hash", `[{package: a}, nginx]`, "resources[1]: want a resource declaration", "", 1},
		{"type without title", `[{type: package, parameters: {}}]`, "resources[0].title: a resource declaration must include the title key if the type key is set", "title", 0},
		{"title without type", `[{title: nginx}]`, "resources[0].type: a resource declaration must include the type key if the title key is set", "type", 0},
		{"missing type", `[{parameters: {ensure: present}}]`, "resources[0].type: the resource declaration is missing a type", "type", 0},
		{"ambiguous type", `[{package: nginx, service: nginx}]`, "resources[0].type: the resource declaration has an ambiguous type: could be package or service", "type", 0},
		{"extra key beside type", `[{type: package, title: a, ensure: present}]`, `resources[0].ensure: unknown key "ensure" beside type and title`, "ensure", 0},
		{"capitalized type", `[{Package: nginx}]`, `resources[0].type: resource type "Package" must be lower case ("package")`, "type", 0},
		{"bad type name", `[{"pack age": nginx}]`, `resources[0].type: "pack age" is not a resource type name`, "type", 0},
		{"reserved word", `[{ok: 1}, {if: x}]`, `resources[1].type: "if" is a reserved word`, "type", 1},
		{"empty title", `[{package: ""}]`, "resources[0].title: the title is empty", "title", 0},
		{"null title", `[{package: }]`, "resources[0].title: the title is missing (undef)", "title", 0},
		{"list title", `[{package: [a, b]}]`, "resources[0].title: want a string title, got Array", "title", 0},
		{"parameters not a hash", `[{package: a, parameters: [x]}]`, "resources[0].parameters: want a hash of attribute names to values, got Array", "parameters", 0},
		{"bad attribute name", `[{package: a, parameters: {Ensure: present}}]`, `resources[0].parameters.Ensure: "Ensure" is not an attribute name`, "parameters.Ensure", 0},
		{"splat is not an attribute", `[{package: a, parameters: {"*": {}}}]`, `resources[0].parameters.*: "*" is not an attribute name`, "parameters.*", 0},
		{"nested bad value", `[{file: a}, {file: b, parameters: {content: [ok, .nan]}}]`, "resources[1].parameters.content[1]: the value is not a finite number", "parameters.content[1]", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ResourcesManifest(steps(t, c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
			var me *muster.Error
			if !errors.As(err, &me) || me.Kind != muster.KindInvalid || me.Details["field"] != c.field {
				t.Fatalf("error %#v: want kind %s and field %q", err, muster.KindInvalid, c.field)
			}
			if c.index >= 0 && me.Details["index"] != c.index {
				t.Errorf("index %v, want %d", me.Details["index"], c.index)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	cases := map[string]string{
		"":            "''",
		"plain":       "'plain'",
		"it's":        `'it\'s'`,
		`a\b`:         `'a\\b'`,
		`a\`:          `'a\\'`,
		"${x} $y":     "'${x} $y'",
		"line\nnext":  `"line\nnext"`,
		"tab\t$v\\":   `"tab\t\$v\\"`,
		"bell\a":      `"bell\u{7}"`,
		"ünïcödé ✓":   "'ünïcödé ✓'",
		"sep\u2028x":  `"sep\u{2028}x"`,
		"del\x7f":     `"del\u{7F}"`,
		"\"quoted\"'": `'"quoted"\''`,
	}
	for in, want := range cases {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

// Puppet itself parses every manifest the table produces, and reads each
// string back unchanged (checked by puppet apply in apply_test.go).
func TestManifestsParseWithPuppet(t *testing.T) {
	puppet := requirePuppet(t)
	dir := t.TempDir()
	var all []string
	for i, src := range []string{
		`[{notify: "it's a \\ test", parameters: {message: 'say "hi" ${x} $y'}}]`,
		`[{notify: x, parameters: {message: "a\tb\u0007$c\"d\u2028e\\"}}]`,
		`[{notify: y, parameters: {message: [1, -2.5, 3.0, 1e21, 5e-324, true, null, {k: [v]}]}}]`,
		`[{"file": /tmp/x, parameters: {ensure: absent}}, {"notify": z}]`,
	} {
		m, err := ResourcesManifest(steps(t, src))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, m)
		f := filepath.Join(dir, "m"+string(rune('0'+i))+".pp")
		if err := os.WriteFile(f, []byte(m), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(puppet, "parser", "validate", f).CombinedOutput(); err != nil {
			t.Errorf("puppet parser validate rejects\n%s\n%s", m, out)
		}
	}
	if len(all) == 0 {
		t.Fatal("nothing validated")
	}
}
