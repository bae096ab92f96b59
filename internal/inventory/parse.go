package inventory

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/yamlnode"
)

// data is the config/facts/vars/features block of a group or target entry.
type data struct {
	config   map[string]any
	facts    map[string]any
	vars     map[string]any
	features []string
	// raw holds the keys whose values contain plugin references, resolved
	// when a target that uses them is first looked up.
	raw map[string]rawValue
	// owner names the group or target for messages: `group "web": `.
	owner string
}

// rawValue is an unresolved data value and where it is.
type rawValue struct {
	v    any
	line int
}

// groupDef is one group as written in the file.
type groupDef struct {
	name    string
	line    int
	data    data
	entries []*entry
	groups  []*groupDef
}

// entry is one item of a group's targets list.
type entry struct {
	line    int
	col     int
	str     string // set for the string form
	name    string
	uri     string
	hasURI  bool
	aliases []aliasDef
	data    data
	key     string // the target it refers to, set during resolution
	ref     bool   // a string naming a target (or alias) defined elsewhere
}

type aliasDef struct {
	name string
	line int
}

// maxValueNodes bounds YAML alias expansion in data values.
const maxValueNodes = 100_000

type parser struct {
	file  string
	warnf func(format string, args ...any)
	nodes int
	refs  int       // plugin references parsed so far
	res   *resolver // resolves structural references; nil in sub-parsers
	depth int       // nesting of structural references being expanded
}

// kv is one mapping entry.
type kv struct {
	key   string
	kline int
	val   *yaml.Node
}

func (p *parser) errf(line int, format string, args ...any) error {
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// pairs returns the entries of mapping n, rejecting non-scalar and duplicate keys.
func (p *parser) pairs(n *yaml.Node, ctx string) ([]kv, error) {
	var out []kv
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := yamlnode.Deref(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, p.errf(n.Content[i].Line, "%skeys must be strings", ctx)
		}
		if first, dup := seen[k.Value]; dup {
			return nil, p.errf(k.Line, "%sduplicate key %q (first at line %d)", ctx, k.Value, first)
		}
		seen[k.Value] = k.Line
		out = append(out, kv{key: k.Value, kline: k.Line, val: yamlnode.Deref(n.Content[i+1])})
	}
	return out, nil
}

// str returns a string scalar.
func (p *parser) str(n *yaml.Node, ctx, what string) (string, error) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return "", p.errf(line(n), "%s%s must be a string, not %s", ctx, what, yamlnode.KindName(n))
	}
	return n.Value, nil
}

func line(n *yaml.Node) int {
	if n == nil {
		return 0
	}
	return n.Line
}

// dataKey parses one of config, facts, vars, features, plugin_hooks into d.
func (p *parser) dataKey(d *data, e kv, ctx string) error {
	var v any
	var err error
	before := p.refs
	switch e.key {
	case "config":
		if err = p.checkConfig(e.val, ctx); err != nil {
			return err
		}
		v, err = p.block(e.val, ctx, "config")
	case "facts", "vars":
		v, err = p.block(e.val, ctx, e.key)
	case "plugin_hooks":
		_, err = p.block(e.val, ctx, "plugin_hooks")
		return err
	case "features":
		v, err = p.features(e.val, ctx)
	}
	if err != nil {
		return err
	}
	d.owner = ctx
	if p.refs != before {
		if d.raw == nil {
			d.raw = map[string]rawValue{}
		}
		d.raw[e.key] = rawValue{v: v, line: e.kline}
		return nil
	}
	switch e.key {
	case "config":
		d.config = v.(map[string]any)
	case "facts":
		d.facts = v.(map[string]any)
	case "vars":
		d.vars = v.(map[string]any)
	case "features":
		d.features = toStrings(v.([]any))
	}
	return nil
}

func toStrings(l []any) []string {
	out := make([]string, 0, len(l))
	for _, e := range l {
		out = append(out, e.(string))
	}
	return out
}

func (p *parser) features(n *yaml.Node, ctx string) ([]any, error) {
	if yamlnode.IsNull(n) {
		return []any{}, nil
	}
	if isRef(n) {
		r, err := p.ref(n, 0)
		return []any{r}, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n.Line, "%sfeatures must be a list, not %s", ctx, yamlnode.KindName(n))
	}
	var out []any
	for _, c := range n.Content {
		c = yamlnode.Deref(c)
		if isRef(c) {
			r, err := p.ref(c, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		s, err := p.str(c, ctx, "each feature")
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// root parses the whole document as the implicit group "all".
func (p *parser) root(doc *yaml.Node) (*groupDef, error) {
	g := &groupDef{name: "all", line: 1}
	n := doc
	if n != nil && n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return g, nil
		}
		n = n.Content[0]
	}
	n = yamlnode.Deref(n)
	if yamlnode.IsNull(n) {
		return g, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n.Line, "inventory must be a mapping, not %s", yamlnode.KindName(n))
	}
	pairs, err := p.pairs(n, "")
	if err != nil {
		return nil, err
	}
	var rest []kv
	for _, e := range pairs {
		switch e.key {
		case "version":
			var v int
			if e.val.Kind != yaml.ScalarNode || e.val.Tag != "!!int" || e.val.Decode(&v) != nil || v != 2 {
				return nil, p.errf(e.val.Line, "unsupported inventory version %q: only version 2 is supported", e.val.Value)
			}
		case "name":
			if p.warnf != nil {
				p.warnf("%s:%d: the top-level \"name\" key is ignored", p.file, e.kline)
			}
		default:
			rest = append(rest, e)
		}
	}
	return g, p.body(g, rest, "")
}

// body parses the keys of a group (or of the top level, with ctx "").
func (p *parser) body(g *groupDef, pairs []kv, ctx string) error {
	for _, e := range pairs {
		switch e.key {
		case "config", "facts", "vars", "features", "plugin_hooks":
			if err := p.dataKey(&g.data, e, ctx); err != nil {
				return err
			}
		case "targets":
			if err := p.targets(g, e.val, ctx); err != nil {
				return err
			}
		case "groups":
			if err := p.groups(g, e.val, ctx); err != nil {
				return err
			}
		case "name":
		case "nodes":
			return p.errf(e.kline, "%sunknown key \"nodes\" (this looks like a version 1 inventory; rename \"nodes\" to \"targets\")", ctx)
		default:
			return p.errf(e.kline, "%sunknown key %q", ctx, e.key)
		}
	}
	return nil
}

func (p *parser) groups(parent *groupDef, n *yaml.Node, ctx string) error {
	n, err := p.expand(n, ctx, "groups")
	if err != nil {
		return err
	}
	if yamlnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errf(n.Line, "%sgroups must be a list, not %s", ctx, yamlnode.KindName(n))
	}
	items, err := p.items(n.Content, ctx, "groups")
	if err != nil {
		return err
	}
	for _, c := range items {
		if c == nil || c.Kind != yaml.MappingNode {
			return p.errf(line(c), "%seach group must be a mapping, not %s", ctx, yamlnode.KindName(c))
		}
		pairs, err := p.pairs(c, ctx)
		if err != nil {
			return err
		}
		g := &groupDef{line: c.Line}
		for i, e := range pairs {
			if e.key == "name" {
				if pairs[i].val, err = p.expand(e.val, ctx, "group name"); err != nil {
					return err
				}
				if g.name, err = p.str(pairs[i].val, ctx, "group name"); err != nil {
					return err
				}
				if why := badName(g.name); why != "" {
					return p.errf(pairs[i].val.Line, "%sinvalid group name %q: %s", ctx, g.name, why)
				}
				g.line = pairs[i].val.Line
			}
		}
		if g.name == "" {
			return p.errf(c.Line, "%sgroup has no name", ctx)
		}
		if err := p.body(g, pairs, fmt.Sprintf("group %q: ", g.name)); err != nil {
			return err
		}
		parent.groups = append(parent.groups, g)
	}
	return nil
}

// items expands the plugin references of a targets or groups list; a
// reference that returns a list adds each of its items, and one that
// returns nothing adds none.
func (p *parser) items(list []*yaml.Node, ctx, what string) ([]*yaml.Node, error) {
	var out []*yaml.Node
	for _, c := range list {
		c = yamlnode.Deref(c)
		if !isRef(c) {
			out = append(out, c)
			continue
		}
		x, err := p.expand(c, ctx, what)
		if err != nil {
			return nil, err
		}
		switch {
		case yamlnode.IsNull(x):
		case x.Kind == yaml.SequenceNode:
			more, err := p.items(x.Content, ctx, what)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
		default:
			out = append(out, x)
		}
	}
	return out, nil
}

func (p *parser) targets(g *groupDef, n *yaml.Node, ctx string) error {
	n, err := p.expand(n, ctx, "targets")
	if err != nil {
		return err
	}
	if yamlnode.IsNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		return p.errf(n.Line, "%stargets must be a list, not %s", ctx, yamlnode.KindName(n))
	}
	items, err := p.items(n.Content, ctx, "targets")
	if err != nil {
		return err
	}
	for _, c := range items {
		switch {
		case c != nil && c.Kind == yaml.ScalarNode && c.Tag == "!!str":
			if c.Value == "" {
				return p.errf(c.Line, "%starget is an empty string", ctx)
			}
			if _, err := ParseURI(c.Value); err != nil {
				return p.errf(c.Line, "%starget %q: %v", ctx, Redact(c.Value), err)
			}
			g.entries = append(g.entries, &entry{line: c.Line, col: c.Column, str: c.Value})
		case c != nil && c.Kind == yaml.MappingNode:
			e, err := p.target(c, ctx)
			if err != nil {
				return err
			}
			g.entries = append(g.entries, e)
		default:
			return p.errf(line(c), "%seach target must be a string or a mapping, not %s", ctx, yamlnode.KindName(c))
		}
	}
	return nil
}

func (p *parser) target(n *yaml.Node, ctx string) (*entry, error) {
	pairs, err := p.pairs(n, ctx)
	if err != nil {
		return nil, err
	}
	e := &entry{line: n.Line, col: n.Column}
	for i, f := range pairs {
		switch f.key {
		case "name", "uri", "alias":
			if pairs[i].val, err = p.expand(f.val, ctx, "target "+f.key); err != nil {
				return nil, err
			}
			f = pairs[i]
		}
		switch f.key {
		case "name":
			if e.name, err = p.str(f.val, ctx, "target name"); err != nil {
				return nil, err
			}
			if why := badName(e.name); why != "" {
				return nil, p.errf(f.val.Line, "%sinvalid target name %q: %s", ctx, Redact(e.name), why)
			}
		case "uri":
			if e.uri, err = p.str(f.val, ctx, "target uri"); err != nil {
				return nil, err
			}
			if _, err := ParseURI(e.uri); err != nil {
				return nil, p.errf(f.val.Line, "%starget uri %q: %v", ctx, Redact(e.uri), err)
			}
			e.hasURI = true
		}
	}
	if e.name == "" && !e.hasURI {
		return nil, p.errf(n.Line, "%starget needs a name or a uri", ctx)
	}
	ctx = fmt.Sprintf("%starget %q: ", ctx, e.display())
	for _, f := range pairs {
		switch f.key {
		case "name", "uri":
		case "alias":
			if e.aliases, err = p.aliases(f.val, ctx); err != nil {
				return nil, err
			}
		case "config", "facts", "vars", "features", "plugin_hooks":
			if err := p.dataKey(&e.data, f, ctx); err != nil {
				return nil, err
			}
		default:
			return nil, p.errf(f.kline, "%sunknown key %q", ctx, f.key)
		}
	}
	return e, nil
}

func (p *parser) aliases(n *yaml.Node, ctx string) ([]aliasDef, error) {
	if yamlnode.IsNull(n) {
		return nil, nil
	}
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	var out []aliasDef
	for _, c := range items {
		c = yamlnode.Deref(c)
		s, err := p.str(c, ctx, "alias")
		if err != nil {
			return nil, p.errf(line(c), "%salias must be a string or a list of strings, not %s", ctx, yamlnode.KindName(c))
		}
		if why := badName(s); why != "" {
			return nil, p.errf(c.Line, "%sinvalid alias %q: %s", ctx, s, why)
		}
		out = append(out, aliasDef{name: s, line: c.Line})
	}
	return out, nil
}

// display is the entry's name for messages: never with a password.
func (e *entry) display() string {
	if e.name != "" {
		return e.name
	}
	uri := e.uri
	if e.str != "" {
		uri = e.str
	}
	if u, err := ParseURI(uri); err == nil {
		return u.Safe
	}
	return Redact(uri)
}

// badName explains why s is not a valid target, group or alias name, or
// returns "".
func badName(s string) string {
	if s == "" {
		return "empty"
	}
	for _, r := range s {
		switch {
		case r > 0x7e:
			return "must be ASCII"
		case r <= ' ' || r == 0x7f:
			return "must not contain whitespace or control characters"
		case r == ',':
			return "must not contain commas"
		}
	}
	return ""
}
