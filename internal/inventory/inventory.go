// Package inventory loads Bolt inventory version 2 files (inventory.yaml)
// and resolves every target with Bolt's merge rules.
//
// Every *muster.Target the package returns is a fresh deep copy: callers may
// modify it freely.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/yamlnode"
)

// Options controls loading.
type Options struct {
	// Defaults is the lowest-precedence config, typically from CLI flags,
	// shaped like an inventory config block: {"ssh": {"user": "x", "port": 2222}}.
	Defaults map[string]any
	// Warnf, when set, receives warnings (ignored keys, duplicates).
	Warnf func(format string, args ...any)
}

// Error is an inventory validation error located in a file.
type Error = yamlnode.Error

// invalid wraps err as a muster invalid-input error with its file and line.
func invalid(err error) error { return yamlnode.Invalid(err) }

// Inventory is a loaded, fully resolved inventory. It is safe for
// concurrent reads.
type Inventory struct {
	file    string
	opts    Options
	root    *groupNode
	targets map[string]*muster.Target
	order   []string            // target names, file order
	groups  map[string][]string // group name -> member names, file order
	gorder  []string
	aliases map[string]string
}

// Load reads and parses the inventory file at path.
func Load(path string, opts Options) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, invalid(&Error{File: path, Msg: fmt.Sprintf("cannot read inventory: %v", errors.Unwrap(err))})
	}
	return Parse(path, b, opts)
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Parse parses inventory data; filename is used in error messages.
// Errors are *muster.Error of kind muster.KindInvalid wrapping an *Error.
func Parse(filename string, data []byte, opts Options) (inv *Inventory, err error) {
	defer func() {
		if r := recover(); r != nil {
			inv, err = nil, invalid(&Error{File: filename, Msg: fmt.Sprintf("cannot parse inventory: %v", r)})
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := splitYAMLError(err)
		return nil, invalid(&Error{File: filename, Line: problemLine(data, line, msg), Msg: "invalid YAML: " + msg})
	}
	p := &parser{file: filename, warnf: opts.Warnf}
	def, err := p.root(&doc)
	if err != nil {
		return nil, invalid(err)
	}
	inv, err = resolve(filename, def, opts)
	if err != nil {
		return nil, invalid(err)
	}
	return inv, nil
}

func splitYAMLError(err error) (int, string) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, m[2]
	}
	return 0, strings.TrimPrefix(msg, "yaml: ")
}

// problemLine improves on yaml.v3, which reports the line where the
// enclosing construct starts (and 0-based for parser errors): the problem
// is on the first line n at or after it such that the first n lines fail
// with the same message.
func problemLine(data []byte, reported int, msg string) int {
	lines := bytes.SplitAfter(data, []byte("\n"))
	start := max(reported, 1)
	for n := start; n <= len(lines) && n < start+50; n++ {
		var doc yaml.Node
		err := yaml.Unmarshal(bytes.Join(lines[:n], nil), &doc)
		if err == nil {
			continue
		}
		if _, m := splitYAMLError(err); m == msg {
			return n
		}
	}
	return reported
}

// Empty returns an inventory with no file: only the empty group "all", so
// only ad-hoc targets exist.
func Empty(opts Options) *Inventory {
	inv, err := resolve("", &groupDef{name: "all"}, opts)
	if err != nil {
		panic(err) // cannot happen: nothing to validate
	}
	return inv
}

// resolve runs Bolt's load steps: string targets, validation, then the
// merge of every target.
func resolve(file string, def *groupDef, opts Options) (*Inventory, error) {
	inv := &Inventory{
		file: file, opts: opts,
		targets: map[string]*muster.Target{}, groups: map[string][]string{},
		aliases: map[string]string{},
	}
	errf := func(line int, format string, args ...any) error {
		return &Error{File: file, Line: line, Msg: fmt.Sprintf(format, args...)}
	}
	// Pass 1: keys of mapping-defined targets and their aliases.
	known := map[string]bool{}
	aliasOf := map[string]string{}
	var all []*groupDef
	var walk func(g *groupDef)
	walk = func(g *groupDef) {
		all = append(all, g)
		for _, e := range g.entries {
			if e.str == "" {
				e.key = e.display()
				known[e.key] = true
				for _, a := range e.aliases {
					if _, dup := aliasOf[a.name]; !dup {
						aliasOf[a.name] = e.key
					}
				}
			}
		}
		for _, c := range g.groups {
			walk(c)
		}
	}
	walk(def)
	// Pass 2: a string is a known target, an alias, or a new target's uri.
	for _, g := range all {
		for _, e := range g.entries {
			if e.str == "" {
				continue
			}
			switch {
			case known[e.str]:
				e.key, e.name, e.ref = e.str, e.str, true
			case aliasOf[e.str] != "":
				e.key, e.name, e.ref = aliasOf[e.str], aliasOf[e.str], true
			default:
				e.key, e.uri = e.display(), e.str
			}
		}
	}
	// Pass 3: validation, depth-first in file order like Bolt's Group#validate.
	type seen struct {
		what string
		line int
	}
	groupLine := map[string]int{}
	targetLine := map[string]int{}
	aliasAt := map[string]seen{} // alias -> target, line
	var validate func(g *groupDef) error
	validate = func(g *groupDef) error {
		if l, ok := groupLine[g.name]; ok {
			return errf(g.line, "duplicate group name %q (first defined at line %d)", g.name, l)
		}
		if l, ok := targetLine[g.name]; ok {
			return errf(g.line, "group name %q clashes with the target of the same name at line %d", g.name, l)
		}
		if a, ok := aliasAt[g.name]; ok {
			return errf(g.line, "group name %q clashes with an alias of target %q at line %d", g.name, a.what, a.line)
		}
		groupLine[g.name] = g.line
		for _, e := range g.entries {
			if l, ok := groupLine[e.key]; ok {
				return errf(e.line, "target name %q clashes with the group of the same name at line %d", e.key, l)
			}
			if a, ok := aliasAt[e.key]; ok {
				return errf(e.line, "target name %q clashes with an alias of target %q at line %d", e.key, a.what, a.line)
			}
			if _, ok := targetLine[e.key]; !ok {
				targetLine[e.key] = e.line
			}
		}
		for _, e := range g.entries {
			for _, a := range e.aliases {
				if l, ok := groupLine[a.name]; ok {
					return errf(a.line, "alias %q of target %q clashes with the group of the same name at line %d", a.name, e.key, l)
				}
				if l, ok := targetLine[a.name]; ok {
					return errf(a.line, "alias %q of target %q clashes with the target of the same name at line %d", a.name, e.key, l)
				}
				if prev, ok := aliasAt[a.name]; ok {
					return errf(a.line, "duplicate alias %q: target %q, already an alias of target %q at line %d", a.name, e.key, prev.what, prev.line)
				}
				aliasAt[a.name] = seen{e.key, a.line}
			}
		}
		for _, c := range g.groups {
			if err := validate(c); err != nil {
				return err
			}
		}
		return nil
	}
	if err := validate(def); err != nil {
		return nil, err
	}
	// Pass 4: merge every target, in order of first appearance in the file.
	var build func(g *groupDef) *groupNode
	firstAt := map[string]*entry{}
	build = func(g *groupDef) *groupNode {
		n := &groupNode{def: g, local: map[string][]*entry{}}
		for _, e := range g.entries {
			if f, ok := firstAt[e.key]; !ok || e.line < f.line || e.line == f.line && e.col < f.col {
				if !ok {
					inv.order = append(inv.order, e.key)
				}
				firstAt[e.key] = e
			}
			n.local[e.key] = append(n.local[e.key], e)
		}
		for _, c := range g.groups {
			n.groups = append(n.groups, build(c))
		}
		return n
	}
	inv.root = build(def)
	sort.SliceStable(inv.order, func(i, j int) bool {
		a, b := firstAt[inv.order[i]], firstAt[inv.order[j]]
		return a.line < b.line || a.line == b.line && a.col < b.col
	})
	for _, key := range inv.order {
		t, err := inv.build(inv.root.targetCollect(key), inv.root.groupCollect(key), false)
		if err != nil {
			return nil, errf(firstAt[key].line, "%v", err)
		}
		inv.targets[key] = t
		for _, a := range t.Alias {
			inv.aliases[a] = key
		}
	}
	var index func(g *groupNode)
	index = func(g *groupNode) {
		set := map[string]bool{}
		g.members(set)
		var names []string
		for _, k := range inv.order {
			if set[k] {
				names = append(names, k)
			}
		}
		inv.groups[g.def.name] = names
		inv.gorder = append(inv.gorder, g.def.name)
		for _, c := range g.groups {
			index(c)
		}
	}
	index(inv.root)
	return inv, nil
}

// File returns the path the inventory was loaded from ("" for Empty).
func (inv *Inventory) File() string { return inv.file }

// Targets returns every inventory target in order of first appearance in
// the file (by line and column).
func (inv *Inventory) Targets() []*muster.Target {
	out := make([]*muster.Target, 0, len(inv.order))
	for _, k := range inv.order {
		out = append(out, CloneTarget(inv.targets[k]))
	}
	return out
}

// Group returns the targets of a group and all its subgroups, in file
// order; "all" returns every target. The bool is false for an unknown group.
func (inv *Inventory) Group(name string) ([]*muster.Target, bool) {
	names, ok := inv.groups[name]
	if !ok {
		return nil, false
	}
	out := make([]*muster.Target, 0, len(names))
	for _, k := range names {
		out = append(out, CloneTarget(inv.targets[k]))
	}
	return out, true
}

// GroupNames returns every group name, "all" first, then depth-first in
// file order.
func (inv *Inventory) GroupNames() []string {
	return append([]string(nil), inv.gorder...)
}

// IsEmpty reports whether the inventory defines no target and no group
// besides "all".
func (inv *Inventory) IsEmpty() bool { return len(inv.order) == 0 && len(inv.gorder) <= 1 }

// Names returns every group name (as GroupNames), then every target name
// and then every alias (both in target order), for "did you mean" hints.
func (inv *Inventory) Names() []string {
	out := append([]string(nil), inv.gorder...)
	out = append(out, inv.order...)
	for _, k := range inv.order {
		out = append(out, inv.targets[k].Alias...)
	}
	return out
}

// Target returns the inventory target with this exact name.
func (inv *Inventory) Target(name string) (*muster.Target, bool) {
	t, ok := inv.targets[name]
	if !ok {
		return nil, false
	}
	return CloneTarget(t), true
}

// ByAlias returns the inventory target with this exact alias.
func (inv *Inventory) ByAlias(alias string) (*muster.Target, bool) {
	k, ok := inv.aliases[alias]
	if !ok {
		return nil, false
	}
	return CloneTarget(inv.targets[k]), true
}

// Adhoc returns a new target that is not in the inventory, built from uri
// as Bolt does: it joins group "all" and gets that group's config, vars,
// facts and features, over Options.Defaults. A uri that is the name of an
// inventory target returns that target. An ad-hoc "localhost" always has
// the local transport, whatever transport the inventory's config sets.
func (inv *Inventory) Adhoc(uri string) (*muster.Target, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "invalid target %q: %v", Redact(uri), err)
	}
	if t, ok := inv.targets[uri]; ok && !u.HasPassword {
		return CloneTarget(t), nil
	}
	t, err := inv.build(&mdata{uri: uri}, inv.root.own(), true)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "%v", err)
	}
	return t, nil
}
