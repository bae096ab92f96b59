package inventory

import (
	"context"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
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
		"targets: [{name: a, config: {ssh: {password: {_plugin: env_var, var: FUZZ_UNSET_VAR, default: x}}}}]\n",
		"targets:\n  - _plugin: env_var\n    var: FUZZ_UNSET_VAR\n    default: [a, b]\n",
		"groups: {_plugin: env_var, var: FUZZ_UNSET_VAR, default: [{name: g, targets: [x]}]}\n",
		"vars: {_plugin: nope}\n", "features: [{_plugin: env_var, var: X, optional: true}, b]\n",
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
		all, err := inv.All()
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, tg := range all {
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

// FuzzPluginRef checks the parsing and resolution of one plugin
// reference with arbitrary plugin names and parameters: no panic, every
// error names the inventory file, and a resolved value has no reference
// left in it.
func FuzzPluginRef(f *testing.F) {
	f.Add("env_var", "var", "FUZZ_UNSET_VAR", "default", "d")
	f.Add("env_var", "var", "HOME", "optional", "true")
	f.Add("prompt", "message", "Password", "", "")
	f.Add("task", "task", "mymod::secret", "parameters", "{a: 1}")
	f.Add("yaml", "filepath", "nothere.yaml", "", "")
	f.Add("pkcs7", "encrypted_value", "ENC[PKCS7,MIIB]", "", "")
	f.Add("terraform", "dir", ".", "resource_type", "(")
	f.Add("puppetdb", "query", "inventory[certname] {}", "target_mapping", "{uri: facts.x}")
	f.Add("vault", "path", "x", "", "")
	f.Add("env_var", "var", "X", "default", "{_plugin: env_var, var: Y, default: z}")
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, plugin, k1, v1, k2, v2 string) {
		ref := map[string]any{"_plugin": plugin}
		for _, kv := range [][2]string{{k1, v1}, {k2, v2}} {
			if kv[0] == "" || kv[0] == "_plugin" {
				continue
			}
			var v any
			if yaml.Unmarshal([]byte(kv[1]), &v) != nil {
				v = kv[1]
			}
			ref[kv[0]] = v
		}
		doc, err := yaml.Marshal(map[string]any{"targets": []any{map[string]any{"name": "t", "vars": map[string]any{"v": ref}}}})
		if err != nil {
			return
		}
		opts := Options{
			ProjectDir: dir, Warnf: func(string, ...any) {},
			Prompt: func(string) (string, error) { return "answer", nil },
			RunTask: func(_ context.Context, name string, params map[string]any) (map[string]any, error) {
				return map[string]any{"value": name}, nil
			},
		}
		inv, err := Parse("fuzz.yaml", doc, opts)
		if err == nil {
			var ts []*muster.Target
			ts, _, err = inv.Lookup("t")
			if err == nil {
				if len(ts) != 1 || hasRef(ts[0].Vars) {
					t.Fatalf("bad result %v", ts)
				}
				return
			}
		}
		if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
			t.Fatalf("error does not name the file: %q", err)
		}
	})
}

// hasRef reports whether v holds a *ref or a sensitive marker.
func hasRef(v any) bool {
	switch x := v.(type) {
	case *ref, sensitive:
		return true
	case map[string]any:
		for _, e := range x {
			if hasRef(e) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if hasRef(e) {
				return true
			}
		}
	}
	return false
}
