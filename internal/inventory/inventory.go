// Package inventory loads Bolt inventory version 2 files (inventory.yaml)
// and resolves every target with Bolt's merge rules.
//
// Every *muster.Target the package returns is a fresh deep copy: callers may
// modify it freely.
package inventory

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

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

	// ProjectDir is where plugins take relative paths from (the yaml
	// plugin's filepath, the pkcs7 keys, terraform's dir, PuppetDB's
	// certificates); "" is the inventory file's directory.
	ProjectDir string
	// Plugins is the project's plugin configuration by plugin name
	// (bolt-project.yaml's "plugins"), e.g. pkcs7's private-key,
	// public-key and keysize.
	Plugins map[string]map[string]any
	// PuppetDB is the PuppetDB connection (bolt-project.yaml's
	// "puppetdb"): server_urls, cacert, cert, key, token,
	// connect_timeout, read_timeout.
	PuppetDB map[string]any
	// Prompt asks the user for the prompt plugin's value; nil asks on the
	// terminal without echo, and fails with ErrNotInteractive when
	// standard input is not a terminal.
	Prompt func(message string) (string, error)
	// RunTask runs a task on localhost for the task plugin and returns
	// its result (the task's JSON output as a map); nil makes the task
	// plugin fail with a clear error. It runs while the Inventory resolves
	// a target, so it must not look targets up in the same Inventory
	// (build its localhost target from inventory.Empty).
	RunTask func(ctx context.Context, name string, params map[string]any) (map[string]any, error)
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
	order   []string            // target names, file order
	groups  map[string][]string // group name -> member names, file order
	gorder  []string
	aliases map[string]string   // alias -> target
	aliasOf map[string][]string // target -> its aliases
	firstAt map[string]*entry
	res     *resolver

	// mu guards the lazily built targets and resolved data.
	mu       sync.Mutex
	targets  map[string]*muster.Target
	secret   map[string][][]string // target -> paths of sensitive values
	resolved map[*data]*data
}

// errDeferred stops a load-time build that would need to run a plugin.
var errDeferred = errors.New("needs a plugin")

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
	res := newResolver(filename, opts)
	p := &parser{file: filename, warnf: opts.Warnf, res: res}
	def, err := p.root(&doc)
	if err != nil {
		return nil, invalid(err)
	}
	inv, err = resolve(filename, def, opts, res)
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
	inv, err := resolve("", &groupDef{name: "all"}, opts, newResolver("", opts))
	if err != nil {
		panic(err) // cannot happen: nothing to validate
	}
	return inv
}

// resolve runs Bolt's load steps: string targets, validation, then the
// merge of every target.
func resolve(file string, def *groupDef, opts Options, res *resolver) (*Inventory, error) {
	inv := &Inventory{
		file: file, opts: opts, res: res,
		targets: map[string]*muster.Target{}, groups: map[string][]string{},
		aliases: map[string]string{}, aliasOf: map[string][]string{},
		secret: map[string][][]string{}, resolved: map[*data]*data{},
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
	// Inside one group, Bolt keeps the first definition of a target and
	// ignores the others, with a warning.
	for _, g := range all {
		first := map[string]*entry{}
		kept := g.entries[:0:0]
		for _, e := range g.entries {
			if f, dup := first[e.key]; dup {
				if opts.Warnf != nil {
					opts.Warnf("%s:%d: group %q: ignoring duplicate target %q (first defined at line %d)", file, e.line, g.name, e.key, f.line)
				}
				continue
			}
			first[e.key] = e
			kept = append(kept, e)
		}
		g.entries = kept
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
		n := &groupNode{def: g, local: map[string]*entry{}}
		for _, e := range g.entries {
			if f, ok := firstAt[e.key]; !ok || e.line < f.line || e.line == f.line && e.col < f.col {
				if !ok {
					inv.order = append(inv.order, e.key)
				}
				firstAt[e.key] = e
			}
			n.local[e.key] = e
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
	inv.firstAt = firstAt
	// Targets whose data holds no plugin reference are built now, so their
	// errors show at load; the others when first looked up.
	for _, key := range inv.order {
		if _, err := inv.target(key, false); err != nil && !errors.Is(err, errDeferred) {
			return nil, err
		}
	}
	var aliases func(g *groupNode)
	aliases = func(g *groupNode) {
		for _, e := range g.def.entries {
			for _, a := range e.aliases {
				if _, ok := inv.aliases[a.name]; !ok {
					inv.aliases[a.name] = e.key
					inv.aliasOf[e.key] = append(inv.aliasOf[e.key], a.name)
				}
			}
		}
		for _, c := range g.groups {
			aliases(c)
		}
	}
	aliases(inv.root)
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
