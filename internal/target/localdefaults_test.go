package target

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/inventory"
)

// TestLocalDefaults: the puppet-agent feature and the .rb interpreter come
// together, on every local-transport target (as in Bolt 3) and on any
// target with the feature; the inventory's own choice wins.
func TestLocalDefaults(t *testing.T) {
	inv, err := inventory.Parse("inventory.yaml", []byte(`groups:
  - name: locals
    config: {transport: local}
    targets:
      - n1
      - name: nobundle
        config: {local: {bundled-ruby: false}}
      - name: ownruby
        config: {local: {interpreters: {rb: /usr/local/bin/ruby}}}
  - name: agents
    features: [puppet-agent]
    targets:
      - name: agent1
        uri: ssh://10.0.0.1
      - name: agent2
        uri: ssh://10.0.0.2
        config: {ssh: {interpreters: {.rb: /usr/bin/ruby, .py: /usr/bin/python3}}}
  - name: plain
    targets: [10.0.0.3]
`), inventory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	system := func() (string, bool) { return "/usr/bin/ruby", true }
	bundled := func() (string, bool) { return BundledRuby, false }
	tests := []struct {
		spec    string
		ruby    func() (string, bool)
		feature bool
		interp  any // interpreters[".rb"]; nil for none
		warn    bool
	}{
		{"localhost", bundled, true, BundledRuby, false},
		{"localhost", system, true, "/usr/bin/ruby", true},
		{"local://x", system, true, "/usr/bin/ruby", true},
		{"n1", bundled, true, BundledRuby, false},
		{"nobundle", system, false, nil, false},
		{"ownruby", system, true, nil, false}, // its "rb" key stays and wins
		{"agent1", system, true, BundledRuby, false},
		{"agent2", bundled, true, "/usr/bin/ruby", false},
		{"10.0.0.3", bundled, false, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.spec, func(t *testing.T) {
			ts, err := Resolve(inv, []string{tc.spec})
			if err != nil || len(ts) != 1 {
				t.Fatalf("Resolve: %v %v", ts, err)
			}
			tg := ts[0]
			// Resolve applied the process's defaults; apply them again
			// with the test's Ruby to a fresh copy.
			fresh, _ := inv.Target(tc.spec)
			if fresh == nil {
				fresh, _ = inv.Adhoc(tc.spec)
			}
			applyLocalDefaults(fresh, tc.ruby)
			if tg.HasFeature(PuppetAgent) != tc.feature || fresh.HasFeature(PuppetAgent) != tc.feature {
				t.Errorf("puppet-agent feature: %v (Resolve), %v; want %v", tg.HasFeature(PuppetAgent), fresh.HasFeature(PuppetAgent), tc.feature)
			}
			interps, _ := fresh.TransportConfig()["interpreters"].(map[string]any)
			if got := interps[".rb"]; got != tc.interp {
				t.Errorf(`interpreters[".rb"] = %v, want %v (config %v)`, got, tc.interp, fresh.Config)
			}
			if tc.spec == "ownruby" && interps["rb"] != "/usr/local/bin/ruby" {
				t.Errorf("the inventory's interpreter was lost: %v", interps)
			}
			if tc.spec == "agent2" && interps[".py"] != "/usr/bin/python3" {
				t.Errorf("other interpreters were lost: %v", interps)
			}
			w, fb := rubyFallback(fresh, tc.ruby)
			if fb != tc.warn || (fb && !strings.Contains(w, BundledRuby+" is not installed")) {
				t.Errorf("RubyFallback = %q, %v; want %v", w, fb, tc.warn)
			}
		})
	}
	// Defaults never reach the inventory's own copy.
	again, _ := inv.Target("n1")
	if again.HasFeature(PuppetAgent) {
		t.Error("Resolve changed the inventory's target")
	}
}

func TestFindRuby(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "ruby")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	found := func(string) (string, error) { return "/usr/bin/ruby", nil }
	none := func(string) (string, error) { return "", errors.New("not found") }
	tests := []struct {
		name     string
		bundled  string
		look     func(string) (string, error)
		want     string
		fallback bool
	}{
		{"bundled present", exe, found, exe, false},
		{"bundled absent: system ruby", filepath.Join(dir, "nope"), found, "/usr/bin/ruby", true},
		{"bundled not executable", plain, found, "/usr/bin/ruby", true},
		{"no ruby at all: the bundled path", filepath.Join(dir, "nope"), none, filepath.Join(dir, "nope"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, fb := findRuby(tc.bundled, tc.look)
			if got != tc.want || fb != tc.fallback {
				t.Errorf("findRuby = %q, %v; want %q, %v", got, fb, tc.want, tc.fallback)
			}
		})
	}
}
