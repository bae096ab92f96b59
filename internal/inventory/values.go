package inventory

import (
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/yamlnode"
)

// value converts a YAML node to plain Go values (map[string]any, []any, scalars).
func (p *parser) value(n *yaml.Node, depth int) (any, error) {
	p.nodes++
	if p.nodes > maxValueNodes || depth > 1000 {
		return nil, p.errf(line(n), "value is too large or too deeply nested")
	}
	n = yamlnode.Deref(n)
	if n == nil || n.Kind == yaml.AliasNode {
		return nil, p.errf(line(n), "unresolvable YAML alias")
	}
	switch n.Kind {
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!str":
			return n.Value, nil
		case "!!null":
			return nil, nil
		case "!!bool":
			if b, err := strconv.ParseBool(n.Value); err == nil {
				return b, nil
			}
		case "!!int":
			if i, err := strconv.Atoi(n.Value); err == nil {
				return i, nil
			}
		}
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, p.errf(n.Line, "invalid %s value", strings.TrimPrefix(n.Tag, "!!"))
		}
		return v, nil
	case yaml.SequenceNode:
		out := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			v, err := p.value(c, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
		return out, nil
	case yaml.MappingNode:
		if isRef(n) {
			return p.ref(n, depth)
		}
		return p.mapValue(n, depth)
	}
	return nil, p.errf(n.Line, "unsupported YAML node")
}

func (p *parser) mapValue(n *yaml.Node, depth int) (map[string]any, error) {
	out := map[string]any{}
	var merges []*yaml.Node
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := yamlnode.Deref(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, p.errf(n.Content[i].Line, "mapping keys must be strings")
		}
		if k.Tag == "!!merge" {
			merges = append(merges, n.Content[i+1])
			continue
		}
		if first, dup := seen[k.Value]; dup {
			return nil, p.errf(k.Line, "duplicate key %q (first at line %d)", k.Value, first)
		}
		seen[k.Value] = k.Line
		v, err := p.value(n.Content[i+1], depth+1)
		if err != nil {
			return nil, err
		}
		out[k.Value] = v
	}
	// YAML merge keys: explicit keys win, then earlier merged maps.
	for _, m := range merges {
		m = yamlnode.Deref(m)
		srcs := []*yaml.Node{m}
		if m != nil && m.Kind == yaml.SequenceNode {
			srcs = m.Content
		}
		for _, src := range srcs {
			src = yamlnode.Deref(src)
			if src == nil || src.Kind != yaml.MappingNode {
				return nil, p.errf(line(m), "merge key \"<<\" needs a mapping or a list of mappings")
			}
			mv, err := p.mapValue(src, depth+1)
			if err != nil {
				return nil, err
			}
			for k, v := range mv {
				if _, ok := out[k]; !ok {
					out[k] = v
				}
			}
		}
	}
	return out, nil
}

// block converts a mapping-valued data key (config, facts, vars): a
// mapping (nil for null) or a plugin reference (*ref) for the whole block.
func (p *parser) block(n *yaml.Node, ctx, what string) (any, error) {
	if yamlnode.IsNull(n) {
		return map[string]any{}, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n.Line, "%s%s must be a mapping, not %s", ctx, what, yamlnode.KindName(n))
	}
	return p.value(n, 0)
}

// expand resolves a plugin reference where the inventory's structure
// depends on it (a targets or groups list or entry, a name, uri or alias),
// as Bolt does when it loads an inventory, and returns the resolved value
// as YAML nodes carrying the reference's line. Other nodes are returned as
// they are.
func (p *parser) expand(n *yaml.Node, ctx, what string) (*yaml.Node, error) {
	n = yamlnode.Deref(n)
	if !isRef(n) {
		return n, nil
	}
	if p.res == nil {
		return nil, p.errf(n.Line, "%s%s: plugin references cannot be used here", ctx, what)
	}
	if p.depth >= maxPluginDepth {
		return nil, p.errf(n.Line, "%s%s: plugin references nest more than %d deep", ctx, what, maxPluginDepth)
	}
	r, err := p.ref(n, 0)
	if err != nil {
		return nil, err
	}
	v, err := p.res.resolve(r, ctx+what, 0)
	if err != nil {
		return nil, err
	}
	var out yaml.Node
	if err := out.Encode(unwrap(v)); err != nil {
		return nil, p.errf(r.line, "%s%s: plugin %q returned data that is not YAML: %v", ctx, what, r.plugin, err)
	}
	setPos(&out, r.line, n.Column)
	p.depth++
	defer func() { p.depth-- }()
	if isRef(&out) {
		return p.expand(&out, ctx, what)
	}
	return &out, nil
}

// setPos gives every node of a resolved value the reference's position.
func setPos(n *yaml.Node, line, col int) {
	n.Line, n.Column = line, col
	for _, c := range n.Content {
		setPos(c, line, col)
	}
}

var transports = map[string]bool{
	"ssh": true, "winrm": true, "pcp": true, "local": true, "docker": true, "podman": true,
	"remote": true, "lxd": true, "jail": true, "choria": true,
}

// checkConfig validates the shape of the keys muster itself reads.
func (p *parser) checkConfig(n *yaml.Node, ctx string) error {
	if n == nil || n.Kind != yaml.MappingNode || isRef(n) {
		return nil
	}
	pairs, err := p.pairs(n, ctx+"config: ")
	if err != nil {
		return err
	}
	for _, e := range pairs {
		if isRef(e.val) {
			continue
		}
		if e.key == "transport" {
			s, err := p.str(e.val, ctx, "config.transport")
			if err != nil {
				return err
			}
			if !transports[s] {
				return p.errf(e.val.Line, "%sunknown transport %q", ctx, s)
			}
			continue
		}
		if !transports[e.key] || yamlnode.IsNull(e.val) {
			continue
		}
		if e.val.Kind != yaml.MappingNode {
			return p.errf(e.val.Line, "%sconfig.%s must be a mapping, not %s", ctx, e.key, yamlnode.KindName(e.val))
		}
		sect, err := p.pairs(e.val, ctx+"config."+e.key+": ")
		if err != nil {
			return err
		}
		for _, o := range sect {
			if isRef(o.val) {
				continue
			}
			what := "config." + e.key + "." + o.key
			switch o.key {
			case "port":
				var port int
				if o.val.Kind != yaml.ScalarNode || o.val.Tag != "!!int" || o.val.Decode(&port) != nil || port < 1 || port > 65535 {
					return p.errf(line(o.val), "%s%s must be an integer from 1 to 65535", ctx, what)
				}
			case "host", "user", "password":
				if _, err := p.str(o.val, ctx, what); err != nil {
					return err
				}
			case "known-hosts": // one file, or a list of files
				items := []*yaml.Node{o.val}
				if o.val.Kind == yaml.SequenceNode && len(o.val.Content) > 0 {
					items = o.val.Content
				}
				for _, it := range items {
					if isRef(it) {
						continue
					}
					if s, err := p.str(it, ctx, what); err != nil || s == "" {
						return p.errf(line(it), "%s%s must be a file path or a list of file paths", ctx, what)
					}
				}
			}
		}
	}
	return nil
}
