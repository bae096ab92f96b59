package pull

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/yamlnode"
)

var (
	yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)
	envName  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// Parse parses the pull configuration in data; file names it in errors.
// Errors are *muster.Error of kind muster.KindInvalid wrapping an *Error,
// whose message starts "file:line: ".
func Parse(file string, data []byte) (cfg *Config, err error) {
	defer func() {
		if r := recover(); r != nil {
			cfg, err = nil, invalid(&Error{File: file, Msg: fmt.Sprintf("cannot parse: %v", r)})
		}
	}()
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 0, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		return nil, invalid(&Error{File: file, Line: line, Msg: "invalid YAML: " + msg})
	}
	p := &parser{file: file}
	cfg, err = p.config(&doc)
	if err != nil {
		return nil, invalid(err)
	}
	return cfg, nil
}

type parser struct{ file string }

type kv struct {
	key  string
	line int
	val  *yaml.Node
}

func (p *parser) errf(line int, format string, args ...any) error {
	return &Error{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// mapping returns the pairs of mapping n, checking keys against known.
func (p *parser) mapping(n *yaml.Node, what string, known ...string) ([]kv, error) {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil, p.errf(yamlnode.LineOf(n), "%s must be a mapping", what)
	}
	var out []kv
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := yamlnode.Deref(n.Content[i])
		if k == nil || k.Kind != yaml.ScalarNode {
			return nil, p.errf(n.Content[i].Line, "%s: keys must be strings", what)
		}
		if first, dup := seen[k.Value]; dup {
			return nil, p.errf(k.Line, "%s: duplicate key %q (first at line %d)", what, k.Value, first)
		}
		if !slices.Contains(known, k.Value) {
			return nil, p.errf(k.Line, "%s: unknown key %q (known: %s)", what, k.Value, strings.Join(known, ", "))
		}
		seen[k.Value] = k.Line
		out = append(out, kv{key: k.Value, line: k.Line, val: yamlnode.Deref(n.Content[i+1])})
	}
	return out, nil
}

func (p *parser) str(n *yaml.Node, what string) (string, error) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!binary" {
		return "", p.errf(yamlnode.LineOf(n), "%s must be a string", what)
	}
	return n.Value, nil
}

func (p *parser) nonEmpty(n *yaml.Node, what string) (string, error) {
	s, err := p.str(n, what)
	if err == nil && strings.TrimSpace(s) == "" {
		err = p.errf(yamlnode.LineOf(n), "%s must not be empty", what)
	}
	return s, err
}

func (p *parser) integer(n *yaml.Node, what string) (int, error) {
	if n == nil || n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		return 0, p.errf(yamlnode.LineOf(n), "%s must be an integer", what)
	}
	v, err := strconv.ParseInt(n.Value, 0, 32)
	if err != nil {
		return 0, p.errf(n.Line, "%s: %q is not a 32-bit integer", what, n.Value)
	}
	return int(v), nil
}

func (p *parser) number(n *yaml.Node, what string) (float64, error) {
	if n == nil || n.Kind != yaml.ScalarNode || (n.Tag != "!!int" && n.Tag != "!!float") {
		return 0, p.errf(yamlnode.LineOf(n), "%s must be a number", what)
	}
	var v float64
	if err := n.Decode(&v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, p.errf(n.Line, "%s: %q is not a finite number", what, n.Value)
	}
	return v, nil
}

// duration reads a positive duration: a Go duration string ("30m",
// "1h30m") or a number of seconds.
func (p *parser) duration(n *yaml.Node, what string) (time.Duration, error) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return 0, p.errf(yamlnode.LineOf(n), "%s must be a duration such as 30m", what)
	}
	var d time.Duration
	switch n.Tag {
	case "!!int", "!!float":
		s, err := p.number(n, what)
		if err != nil {
			return 0, err
		}
		if s > float64(math.MaxInt64)/float64(time.Second) {
			return 0, p.errf(n.Line, "%s: %s seconds is too long", what, n.Value)
		}
		d = time.Duration(s * float64(time.Second))
	case "!!str":
		var err error
		if d, err = time.ParseDuration(n.Value); err != nil {
			return 0, p.errf(n.Line, "%s: %q is not a duration such as 30m or 1h30m", what, n.Value)
		}
	default:
		return 0, p.errf(n.Line, "%s must be a duration such as 30m", what)
	}
	if d <= 0 {
		return 0, p.errf(n.Line, "%s must be positive, not %s", what, n.Value)
	}
	return d, nil
}

func (p *parser) list(n *yaml.Node, what string) ([]*yaml.Node, error) {
	if yamlnode.IsNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode {
		return nil, p.errf(n.Line, "%s must be a list", what)
	}
	out := make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		out[i] = yamlnode.Deref(c)
	}
	return out, nil
}

func (p *parser) strings(n *yaml.Node, what string) ([]string, error) {
	items, err := p.list(n, what)
	var out []string
	for _, it := range items {
		if err != nil {
			break
		}
		var s string
		if s, err = p.nonEmpty(it, what+" item"); err == nil {
			out = append(out, s)
		}
	}
	return out, err
}

// env reads a mapping of environment variables. Names starting MUSTER_
// are the scheduler's own and may not be set.
func (p *parser) env(n *yaml.Node, what string) (map[string]string, error) {
	if yamlnode.IsNull(n) {
		return nil, nil
	}
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n.Line, "%s must be a mapping of variable names to values", what)
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := yamlnode.Deref(n.Content[i]), yamlnode.Deref(n.Content[i+1])
		if k == nil || k.Kind != yaml.ScalarNode || !envName.MatchString(k.Value) {
			return nil, p.errf(n.Content[i].Line, "%s: %q is not an environment variable name", what, k.Value)
		}
		if strings.HasPrefix(k.Value, "MUSTER_") {
			return nil, p.errf(k.Line, "%s: %s is reserved (MUSTER_ variables are set by muster)", what, k.Value)
		}
		if _, dup := out[k.Value]; dup {
			return nil, p.errf(k.Line, "%s: duplicate variable %s", what, k.Value)
		}
		if v == nil || v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
			return nil, p.errf(yamlnode.LineOf(v), "%s: %s must be a string, number or boolean", what, k.Value)
		}
		out[k.Value] = v.Value
	}
	return out, nil
}

func (p *parser) glob(n *yaml.Node, what string) (string, error) {
	g, err := p.nonEmpty(n, what)
	if err == nil {
		if _, perr := path.Match(g, ""); perr != nil {
			err = p.errf(n.Line, "%s: %q is not a valid glob: %v", what, g, perr)
		}
	}
	return g, err
}

func (p *parser) match(n *yaml.Node, what string) (Match, error) {
	var m Match
	pairs, err := p.mapping(n, what, "glob", "group")
	if err != nil {
		return m, err
	}
	for _, e := range pairs {
		switch e.key {
		case "glob":
			m.Glob, err = p.glob(e.val, what+".glob")
		case "group":
			m.Group, err = p.nonEmpty(e.val, what+".group")
		}
		if err != nil {
			return m, err
		}
	}
	if m.Any() || m.Glob != "" && m.Group != "" {
		return m, p.errf(n.Line, "%s needs exactly one of glob or group", what)
	}
	return m, nil
}
