package target

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/muster-run/muster"
)

// BundledRuby is the Ruby that Puppet's agent packages install. Bolt's
// local defaults run .rb task implementations with the Ruby it ships;
// muster ships none, so it uses the agent's.
const BundledRuby = "/opt/puppetlabs/puppet/bin/ruby"

// PuppetAgent is the feature that selects a task's Ruby implementations
// (Forge tasks such as package, service, exec and facts list
// "requirements": ["puppet-agent"] on their .rb implementation).
const PuppetAgent = "puppet-agent"

// localRuby finds the interpreter for .rb files on this machine: the
// bundled Ruby when it is there, else the system "ruby" on PATH. It is
// looked up once per process; tests replace it.
var localRuby = sync.OnceValues(func() (string, bool) { return findRuby(BundledRuby, exec.LookPath) })

// findRuby returns bundled when it is an executable file, else the
// system ruby found by lookPath (fallback true), else bundled (so the
// error names the path a Bolt user expects).
func findRuby(bundled string, lookPath func(string) (string, error)) (path string, fallback bool) {
	if fi, err := os.Stat(bundled); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		return bundled, false
	}
	if p, err := lookPath("ruby"); err == nil {
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p, true
	}
	return bundled, false
}

// ApplyLocalDefaults gives t Bolt's local defaults, together:
//
//   - a target on the local transport (localhost, local://..., or any
//     target whose config says transport: local) gets the puppet-agent
//     feature, unless its local config sets bundled-ruby: false, as in
//     Bolt 3;
//   - a target with the puppet-agent feature gets the interpreter for
//     .rb files, unless its config sets one: BundledRuby, or on the local
//     transport when that is absent the system ruby (see RubyFallback).
//
// So Forge tasks whose Ruby implementation is chosen by the feature
// (package, service, exec, facts) run on localhost as they do in Bolt.
// t is changed in place (Resolve's targets are fresh copies).
func ApplyLocalDefaults(t *muster.Target) {
	applyLocalDefaults(t, localRuby)
}

func applyLocalDefaults(t *muster.Target, ruby func() (string, bool)) {
	local := t.Transport == "local"
	sect, _ := t.Config[t.Transport].(map[string]any)
	if local && sect["bundled-ruby"] != false && !t.HasFeature(PuppetAgent) {
		t.Features = append(t.Features, PuppetAgent)
	}
	if !t.HasFeature(PuppetAgent) {
		return
	}
	interps, _ := sect["interpreters"].(map[string]any)
	if interps != nil && (interps[".rb"] != nil || interps["rb"] != nil) {
		return // the inventory's own choice wins
	}
	path := BundledRuby
	if local {
		path, _ = ruby()
	}
	if t.Config == nil {
		t.Config = map[string]any{}
	}
	newSect := make(map[string]any, len(sect)+1)
	for k, v := range sect {
		newSect[k] = v
	}
	newInterps := make(map[string]any, len(interps)+1)
	for k, v := range interps {
		newInterps[k] = v
	}
	newInterps[".rb"] = path
	newSect["interpreters"] = newInterps
	t.Config[t.Transport] = newSect
}

// RubyFallback reports whether t runs .rb files with the system Ruby
// because BundledRuby is missing on this machine, and a warning to print
// when a Ruby implementation runs there.
func RubyFallback(t *muster.Target) (warning string, fallback bool) {
	return rubyFallback(t, localRuby)
}

func rubyFallback(t *muster.Target, ruby func() (string, bool)) (string, bool) {
	if t.Transport != "local" || !t.HasFeature(PuppetAgent) {
		return "", false
	}
	path, fallback := ruby()
	if !fallback {
		return "", false
	}
	interps, _ := t.TransportConfig()["interpreters"].(map[string]any)
	if interps[".rb"] != path {
		return "", false
	}
	return fmt.Sprintf("%s is not installed on this machine: running Ruby tasks on %s with %s", BundledRuby, t.Name, path), true
}
