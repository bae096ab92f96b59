package plan

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/puppet"
)

// tmpl is a YAML value that may hold plan code, compiled at load time.
type tmpl interface {
	eval(rs *runState, s *puppet.Scope) (any, error)
}

type constT struct{ v any }
type exprT struct{ x *puppet.Expr }
type listT struct{ elems []tmpl }
type mapT struct {
	keys []string
	vals []tmpl
}

func (t *constT) eval(*runState, *puppet.Scope) (any, error)            { return t.v, nil }
func (t *exprT) eval(rs *runState, s *puppet.Scope) (any, error)        { return t.x.Eval(s, rs) }
func (t *listT) eval(rs *runState, s *puppet.Scope) (any, error)        { return evalList(t.elems, rs, s) }
func (t *mapT) eval(rs *runState, s *puppet.Scope) (out any, err error) { return evalMap(t, rs, s) }

func evalList(elems []tmpl, rs *runState, s *puppet.Scope) (any, error) {
	out := make([]any, len(elems))
	for i, e := range elems {
		v, err := e.eval(rs, s)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func evalMap(t *mapT, rs *runState, s *puppet.Scope) (any, error) {
	out := make(map[string]any, len(t.keys))
	for i, k := range t.keys {
		v, err := t.vals[i].eval(rs, s)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// yamlPlan is a loaded YAML plan.
type yamlPlan struct {
	steps     []*yamlStep
	ret       tmpl
	hasReturn bool
}

// yamlStep is one step. opts holds every key besides the action.
type yamlStep struct {
	line   int
	kind   string
	name   string
	action tmpl
	opts   map[string]tmpl
}

// stepKeys lists the keys each step kind accepts besides its action key,
// name and description.
var stepKeys = map[string][]string{
	"command":  {"targets", "catch_errors", "env_vars", "run_as", "batch", "canary", "max_failures", "pause"},
	"task":     {"targets", "parameters", "catch_errors", "noop", "run_as", "batch", "canary", "max_failures", "pause"},
	"script":   {"targets", "arguments", "catch_errors", "env_vars", "run_as", "batch", "canary", "max_failures", "pause"},
	"upload":   {"targets", "destination", "catch_errors", "run_as", "batch", "canary", "max_failures", "pause"},
	"download": {"targets", "destination", "catch_errors", "run_as", "batch", "canary", "max_failures", "pause"},
	"plan":     {"targets", "parameters", "catch_errors", "run_as"},
	// A list of resource declarations, applied with Puppet on the targets.
	"resources": {"targets", "noop", "catch_errors", "run_as", "batch", "canary", "max_failures", "pause"},
	"message":   {},
	"verbose":   {},
	"eval":      {},
}

// unsupportedSteps are Bolt step keys muster rejects, with the reason.
var unsupportedSteps = map[string]string{
	"pwsh_params": "pwsh_params (PowerShell scripts) are not supported by muster",
}

var paramNameRE = regexp.MustCompile(`\A[a-z_][a-z0-9_]*\z`)

type yamlLoader struct {
	file string
	vars map[string]bool
}

func (l *yamlLoader) errf(line int, format string, args ...any) error {
	return &LoadError{File: l.file, Line: line, Msg: fmt.Sprintf(format, args...)}
}

// LoadYAML parses and validates a YAML plan. Every problem is a *LoadError
// naming file and line.
func LoadYAML(name, file string, data []byte) (*Plan, error) {
	l := &yamlLoader{file: file, vars: map[string]bool{}}
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, l.yamlErr(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, l.errf(extra.Line, "a plan file holds one YAML document")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, l.errf(doc.Line, "a plan must be a YAML mapping with a steps key")
	}
	root := doc.Content[0]
	p := &Plan{Name: name, File: file, Kind: KindYAML, yaml: &yamlPlan{}}
	var stepsNode, retNode *yaml.Node
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if seen[k.Value] {
			return nil, l.errf(k.Line, "duplicate key %q", k.Value)
		}
		seen[k.Value] = true
		switch k.Value {
		case "description":
			if v.Kind != yaml.ScalarNode {
				return nil, l.errf(v.Line, "description must be a string")
			}
			p.Description = v.Value
		case "private":
			if err := v.Decode(&p.Private); err != nil {
				return nil, l.errf(v.Line, "private must be true or false")
			}
		case "version":
			var n int
			if err := v.Decode(&n); err != nil {
				return nil, l.errf(v.Line, "version must be an integer")
			}
		case "parameters":
			if err := l.params(p, v); err != nil {
				return nil, err
			}
		case "steps":
			stepsNode = v
		case "return":
			retNode = v
		case "batch", "canary", "max_failures", "pause":
			// muster's extension: roll every step of the plan through the
			// targets in batches, unless a step or the command line says otherwise.
			var x any
			if v.Kind != yaml.ScalarNode || v.Decode(&x) != nil {
				return nil, l.errf(v.Line, "%s must be a number, a percentage or a duration", k.Value)
			}
			if err := applyBatchKey(&p.Batch, k.Value, x); err != nil {
				return nil, l.errf(v.Line, "%s: %v", k.Value, err)
			}
		default:
			return nil, l.errf(k.Line, "unknown top-level key %q (expected description, parameters, private, steps, return, version, or batch, canary, max_failures and pause)", k.Value)
		}
	}
	if stepsNode == nil {
		return nil, l.errf(root.Line, "a plan needs a steps key")
	}
	if stepsNode.Kind != yaml.SequenceNode {
		return nil, l.errf(stepsNode.Line, "steps must be a list")
	}
	for _, sn := range stepsNode.Content {
		st, err := l.step(sn)
		if err != nil {
			return nil, err
		}
		p.yaml.steps = append(p.yaml.steps, st)
	}
	if retNode != nil {
		t, err := l.value(retNode, 0)
		if err != nil {
			return nil, err
		}
		p.yaml.ret, p.yaml.hasReturn = t, true
	}
	return p, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+)`)

func (l *yamlLoader) yamlErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		fmt.Sscan(m[1], &line)
	}
	return l.errf(line, "invalid YAML: %s", msg)
}

func (l *yamlLoader) params(p *Plan, v *yaml.Node) error {
	if v.Kind != yaml.MappingNode {
		return l.errf(v.Line, "parameters must be a mapping of name to definition")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, def := v.Content[i], v.Content[i+1]
		if !paramNameRE.MatchString(k.Value) {
			return l.errf(k.Line, "invalid parameter name %q", k.Value)
		}
		if l.vars[k.Value] {
			return l.errf(k.Line, "duplicate parameter %q", k.Value)
		}
		prm := &Param{Name: k.Value}
		if def.Kind == yaml.MappingNode {
			for j := 0; j+1 < len(def.Content); j += 2 {
				dk, dv := def.Content[j], def.Content[j+1]
				switch dk.Value {
				case "type":
					prm.TypeString = dv.Value
				case "description":
					prm.Description = dv.Value
				case "default":
					var d any
					if err := dv.Decode(&d); err != nil {
						return l.errf(dv.Line, "parameter %q: bad default: %v", k.Value, err)
					}
					// As in Bolt, "default: null" (or an empty default) is
					// no default at all.
					if d != nil {
						prm.Default, prm.HasDefault = puppet.Normalize(d), true
					}
				default:
					return l.errf(dk.Line, "parameter %q: unknown key %q (expected type, default or description)", k.Value, dk.Value)
				}
			}
		} else if !(def.Kind == yaml.ScalarNode && def.Tag == "!!null") {
			return l.errf(def.Line, "parameter %q must be a mapping with type, default and description", k.Value)
		}
		if err := setType(prm); err != nil {
			return l.errf(k.Line, "parameter %q: %v", k.Value, err)
		}
		l.vars[k.Value] = true
		p.Parameters = append(p.Parameters, prm)
	}
	return nil
}

// setType parses prm.TypeString and checks the default against it.
func setType(prm *Param) error {
	ts := prm.TypeString
	if ts == "" {
		ts = "Any"
	}
	t, err := puppet.ParseType(ts)
	if err != nil {
		return fmt.Errorf("invalid type %q: %v", ts, err)
	}
	prm.Type = t
	if prm.HasDefault && prm.Default != nil {
		if err := checkType(prm, prm.Default); err != nil {
			return fmt.Errorf("default %v", err)
		}
	}
	return nil
}

func (l *yamlLoader) step(sn *yaml.Node) (*yamlStep, error) {
	if sn.Kind != yaml.MappingNode {
		return nil, l.errf(sn.Line, "a step must be a mapping")
	}
	st := &yamlStep{line: sn.Line, opts: map[string]tmpl{}}
	var actionNode *yaml.Node
	keys := map[string]*yaml.Node{}
	for i := 0; i+1 < len(sn.Content); i += 2 {
		k, v := sn.Content[i], sn.Content[i+1]
		if _, dup := keys[k.Value]; dup {
			return nil, l.errf(k.Line, "duplicate step key %q", k.Value)
		}
		keys[k.Value] = k
		if why, bad := unsupportedSteps[k.Value]; bad {
			return nil, l.errf(k.Line, "%s", why)
		}
		if _, isAction := stepKeys[k.Value]; isAction {
			if st.kind != "" {
				return nil, l.errf(k.Line, "a step has exactly one action, but this one has both %q and %q", st.kind, k.Value)
			}
			st.kind, actionNode = k.Value, v
		}
	}
	if st.kind == "" {
		return nil, l.errf(sn.Line, "a step needs one action key: command, task, script, upload, download, plan, resources, message, verbose or eval")
	}
	allowed := map[string]bool{st.kind: true, "name": true, "description": true}
	for _, k := range stepKeys[st.kind] {
		allowed[k] = true
	}
	var nameNode *yaml.Node
	for i := 0; i+1 < len(sn.Content); i += 2 {
		k, v := sn.Content[i], sn.Content[i+1]
		if !allowed[k.Value] {
			return nil, l.errf(k.Line, "unknown key %q for a %s step (allowed: %s)", k.Value, st.kind, strings.Join(append([]string{"name", "description"}, stepKeys[st.kind]...), ", "))
		}
		switch k.Value {
		case st.kind:
		case "name":
			nameNode = v
		default:
			t, err := l.value(v, 0)
			if err != nil {
				return nil, err
			}
			if err := l.checkConst(k.Value, t, v.Line); err != nil {
				return nil, err
			}
			st.opts[k.Value] = t
		}
	}
	a, err := l.value(actionNode, 0)
	if err != nil {
		return nil, err
	}
	st.action = a
	switch st.kind {
	case "command", "task", "script", "upload", "download", "resources":
		if st.opts["targets"] == nil {
			return nil, l.errf(sn.Line, "a %s step needs targets", st.kind)
		}
		if (st.kind == "upload" || st.kind == "download") && st.opts["destination"] == nil {
			return nil, l.errf(sn.Line, "an %s step needs a destination", st.kind)
		}
		if c, ok := a.(*constT); st.kind == "resources" && ok {
			if _, isList := c.v.([]any); !isList {
				return nil, l.errf(actionNode.Line, "resources must be a list of resource declarations ({type, title, parameters} or {<type>: <title>, parameters})")
			}
		}
	}
	if nameNode != nil {
		if nameNode.Kind != yaml.ScalarNode || !paramNameRE.MatchString(nameNode.Value) {
			return nil, l.errf(nameNode.Line, "step name must be a simple lowercase name, got %q", nameNode.Value)
		}
		if l.vars[nameNode.Value] {
			return nil, l.errf(nameNode.Line, "step name %q repeats a parameter or an earlier step name", nameNode.Value)
		}
		st.name = nameNode.Value
		l.vars[st.name] = true
	}
	return st, nil
}

// checkConst validates option values that are known at load time.
func (l *yamlLoader) checkConst(key string, t tmpl, line int) error {
	c, ok := t.(*constT)
	if !ok {
		return nil
	}
	var err error
	switch key {
	case "catch_errors", "noop":
		if _, isBool := c.v.(bool); !isBool {
			err = errors.New("must be true or false")
		}
	case "batch", "canary", "max_failures", "pause":
		var b Batch
		err = applyBatchKey(&b, key, c.v)
	}
	if err != nil {
		return l.errf(line, "%s: %v", key, err)
	}
	return nil
}

// value compiles a YAML node into a template, parsing code where the
// Bolt string rules say there is code.
func (l *yamlLoader) value(n *yaml.Node, depth int) (tmpl, error) {
	if depth > puppet.MaxDepth {
		return nil, l.errf(n.Line, "value nested too deeply")
	}
	switch n.Kind {
	case yaml.AliasNode:
		return nil, l.errf(n.Line, "YAML aliases are not supported in plans")
	case yaml.SequenceNode:
		lt := &listT{}
		for _, c := range n.Content {
			t, err := l.value(c, depth+1)
			if err != nil {
				return nil, err
			}
			lt.elems = append(lt.elems, t)
		}
		return lt, nil
	case yaml.MappingNode:
		mt := &mapT{}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode {
				return nil, l.errf(k.Line, "mapping keys must be strings")
			}
			if seen[k.Value] {
				return nil, l.errf(k.Line, "duplicate key %q", k.Value)
			}
			seen[k.Value] = true
			t, err := l.value(n.Content[i+1], depth+1)
			if err != nil {
				return nil, err
			}
			mt.keys = append(mt.keys, k.Value)
			mt.vals = append(mt.vals, t)
		}
		return mt, nil
	case yaml.ScalarNode:
	default:
		return nil, l.errf(n.Line, "unexpected YAML node")
	}
	var x *puppet.Expr
	var err error
	switch {
	case n.Style&yaml.LiteralStyle != 0:
		x, err = puppet.ParseExpression(l.file, n.Line+1, n.Value, hostFunctions)
	case n.Style&yaml.DoubleQuotedStyle != 0:
		if !strings.Contains(n.Value, "$") {
			return &constT{n.Value}, nil
		}
		x, err = puppet.ParseInterpolation(l.file, n.Line, n.Value, hostFunctions)
	case n.Style == 0 && strings.HasPrefix(n.Value, "$"):
		x, err = puppet.ParseExpression(l.file, n.Line, n.Value, hostFunctions)
	default:
		var v any
		if n.Style&(yaml.SingleQuotedStyle|yaml.FoldedStyle) != 0 {
			return &constT{n.Value}, nil
		}
		if derr := n.Decode(&v); derr != nil {
			return nil, l.errf(n.Line, "%v", derr)
		}
		return &constT{puppet.Normalize(v)}, nil
	}
	if err != nil {
		var se *puppet.SyntaxError
		if errors.As(err, &se) {
			line := n.Line
			if x == nil {
				tmp := &puppet.Expr{Line: line, Src: n.Value}
				if n.Style&yaml.LiteralStyle != 0 {
					tmp.Line++
				}
				line = tmp.LineOf(se.Offset)
			}
			return nil, l.errf(line, "%s (in %s)", se.Msg, snippet(n.Value))
		}
		return nil, l.errf(n.Line, "%v", err)
	}
	if err := x.CheckVars(l.vars); err != nil {
		se := err.(*puppet.SyntaxError)
		return nil, l.errf(x.LineOf(se.Offset), "%s (in %s)", se.Msg, snippet(n.Value))
	}
	return &exprT{x}, nil
}

// snippet quotes the first line of src, shortened.
func snippet(src string) string {
	s := strings.TrimSpace(src)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " ..."
	}
	if r := []rune(s); len(r) > 60 {
		s = string(r[:57]) + "..."
	}
	return fmt.Sprintf("%q", s)
}
