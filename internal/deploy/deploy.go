// Package deploy holds deployments: roles bound to nodes, as Crowbar's
// annealer had them. A deployment file (YAML) names roles, each with the
// command, task or plan that applies it, the roles it requires (on the
// same node, or anywhere in the deployment), the nodes it binds to (target
// specs) and optional hooks. This package parses the file, plans it (the
// node-roles and the waves of their order, and the jobs that carry them
// onto the queue with per-node or whole-job dependencies), and derives the
// node-roles' states from the runs of those jobs. It does no I/O: the
// command line resolves the selectors and talks to the server.
package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/yamlnode"
)

// Scope says where a required role must be active.
type Scope string

// The scopes of a requirement.
const (
	// ScopeNode: the same node's role must be active first when the node
	// has that role; a node without it waits for the role everywhere.
	ScopeNode Scope = "node"
	// ScopeAny: the role must be active on all of its nodes first.
	ScopeAny Scope = "any"
)

// Action is what a role (or a hook) runs: exactly one of a command, a task
// or a plan, with parameters for a task or plan.
type Action struct {
	Kind muster.JobKind
	Spec muster.JobSpec
}

// Requirement is one role another requires.
type Requirement struct {
	Role  string
	Scope Scope
	Line  int
}

// Role is one role of a deployment.
type Role struct {
	Name     string
	Run      Action
	Requires []Requirement
	// Nodes are target specs (groups, names, globs), resolved through the
	// inventory.
	Nodes        []string
	Priority     int
	Retries      int
	OnActive     *Action
	OnNodeChange *Action
	Line         int
}

// Deployment is a parsed deployment file.
type Deployment struct {
	Name  string
	File  string
	Roles []*Role // in file order
}

// Role returns the named role, or nil.
func (d *Deployment) Role(name string) *Role {
	for _, r := range d.Roles {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// maxRoles bounds a deployment's roles (a job per role and node group).
const maxRoles = 100

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// Parse reads a deployment file strictly: unknown fields, wrong types,
// unknown required roles and cycles are errors naming the file, line and
// field. The errors are muster invalid-input errors.
func Parse(file string, data []byte) (*Deployment, error) {
	d, err := parse(file, data)
	if err != nil {
		return nil, yamlnode.Invalid(err)
	}
	return d, nil
}

type parser struct{ file string }

func (p parser) errf(n *yaml.Node, format string, args ...any) error {
	return &yamlnode.Error{File: p.file, Line: yamlnode.LineOf(n), Msg: fmt.Sprintf(format, args...)}
}

func parse(file string, data []byte) (*Deployment, error) {
	p := parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &yamlnode.Error{File: file, Msg: "not valid YAML: " + err.Error()}
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return nil, &yamlnode.Error{File: file, Msg: "empty deployment: want a mapping with name and roles"}
	}
	top := yamlnode.Deref(doc.Content[0])
	if top == nil || top.Kind != yaml.MappingNode {
		return nil, p.errf(top, "the deployment must be a mapping with name and roles, got %s", yamlnode.KindName(top))
	}
	d := &Deployment{File: file}
	var rolesNode *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], yamlnode.Deref(top.Content[i+1])
		switch k.Value {
		case "name":
			s, err := p.str(v, "name")
			if err != nil {
				return nil, err
			}
			if !nameRE.MatchString(s) {
				return nil, p.errf(v, "name: %q is not a deployment name (lower-case letters, digits, - and _, starting with a letter)", s)
			}
			d.Name = s
		case "roles":
			rolesNode = v
		default:
			return nil, p.errf(k, "unknown field %q (want name or roles)", k.Value)
		}
	}
	switch {
	case d.Name == "":
		return nil, p.errf(top, "name: missing (the deployment's name)")
	case rolesNode == nil || yamlnode.IsNull(rolesNode):
		return nil, p.errf(top, "roles: missing (a mapping of role names to roles)")
	case rolesNode.Kind != yaml.MappingNode:
		return nil, p.errf(rolesNode, "roles: want a mapping of role names to roles, got %s", yamlnode.KindName(rolesNode))
	case len(rolesNode.Content)/2 > maxRoles:
		return nil, p.errf(rolesNode, "roles: %d roles; a deployment may have at most %d", len(rolesNode.Content)/2, maxRoles)
	}
	for i := 0; i+1 < len(rolesNode.Content); i += 2 {
		k, v := rolesNode.Content[i], yamlnode.Deref(rolesNode.Content[i+1])
		if !nameRE.MatchString(k.Value) {
			return nil, p.errf(k, "roles: %q is not a role name (lower-case letters, digits, - and _, starting with a letter)", k.Value)
		}
		if d.Role(k.Value) != nil {
			return nil, p.errf(k, "roles: %q is defined twice", k.Value)
		}
		r, err := p.role(k.Value, v)
		if err != nil {
			return nil, err
		}
		r.Line = k.Line
		d.Roles = append(d.Roles, r)
	}
	if len(d.Roles) == 0 {
		return nil, p.errf(rolesNode, "roles: none defined")
	}
	for _, r := range d.Roles {
		for _, q := range r.Requires {
			switch {
			case q.Role == r.Name:
				return nil, &yamlnode.Error{File: file, Line: q.Line, Msg: fmt.Sprintf("roles.%s.requires: a role cannot require itself", r.Name)}
			case d.Role(q.Role) == nil:
				return nil, &yamlnode.Error{File: file, Line: q.Line,
					Msg: fmt.Sprintf("roles.%s.requires: no role %q in this deployment (roles: %s)", r.Name, q.Role, strings.Join(d.roleNames(), ", "))}
			}
		}
	}
	if cyc := d.cycle(); cyc != nil {
		first := d.Role(cyc[0])
		return nil, &yamlnode.Error{File: file, Line: first.Line, Msg: "requires: a cycle: " + strings.Join(cyc, " -> ")}
	}
	return d, nil
}

func (d *Deployment) roleNames() []string {
	out := make([]string, len(d.Roles))
	for i, r := range d.Roles {
		out[i] = r.Name
	}
	return out
}

// cycle returns a cycle of requirements (its first role repeated at the
// end), or nil.
func (d *Deployment) cycle() []string {
	const (
		white = iota
		grey
		black
	)
	color := map[string]int{}
	var stack []string
	var found []string
	var visit func(name string) bool
	visit = func(name string) bool {
		color[name] = grey
		stack = append(stack, name)
		for _, q := range d.Role(name).Requires {
			switch color[q.Role] {
			case grey:
				i := slices.Index(stack, q.Role)
				found = append(append([]string{}, stack[i:]...), q.Role)
				return true
			case white:
				if visit(q.Role) {
					return true
				}
			}
		}
		stack = stack[:len(stack)-1]
		color[name] = black
		return false
	}
	for _, r := range d.Roles {
		if color[r.Name] == white && visit(r.Name) {
			return found
		}
	}
	return nil
}

func (p parser) str(v *yaml.Node, field string) (string, error) {
	if v == nil || v.Kind != yaml.ScalarNode || v.Tag != "!!str" || v.Value == "" {
		return "", p.errf(v, "%s: want a non-empty string, got %s", field, yamlnode.KindName(v))
	}
	return v.Value, nil
}

func (p parser) integer(v *yaml.Node, field string, lo, hi int) (int, error) {
	var n int
	if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&n) != nil {
		return 0, p.errf(v, "%s: want an integer, got %s", field, yamlnode.KindName(v))
	}
	if n < lo || n > hi {
		return 0, p.errf(v, "%s: %d is out of range (%d to %d)", field, n, lo, hi)
	}
	return n, nil
}

func (p parser) role(name string, n *yaml.Node) (*Role, error) {
	field := "roles." + name
	if n.Kind != yaml.MappingNode {
		return nil, p.errf(n, "%s: want a mapping (run, nodes, requires, ...), got %s", field, yamlnode.KindName(n))
	}
	r := &Role{Name: name}
	haveRun := false
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], yamlnode.Deref(n.Content[i+1])
		f := field + "." + k.Value
		var err error
		switch k.Value {
		case "run":
			var a *Action
			a, err = p.action(v, f)
			if a != nil {
				r.Run, haveRun = *a, true
			}
		case "on_active":
			r.OnActive, err = p.action(v, f)
		case "on_node_change":
			r.OnNodeChange, err = p.action(v, f)
		case "nodes":
			r.Nodes, err = p.strings(v, f)
		case "requires":
			r.Requires, err = p.requires(v, f)
		case "priority":
			r.Priority, err = p.integer(v, f, -1000, 1000)
		case "retries":
			r.Retries, err = p.integer(v, f, 0, 100)
		default:
			err = p.errf(k, "%s: unknown field %q (want run, nodes, requires, priority, retries, on_active or on_node_change)", field, k.Value)
		}
		if err != nil {
			return nil, err
		}
	}
	switch {
	case !haveRun:
		return nil, p.errf(n, "%s.run: missing (a command, task or plan)", field)
	case len(r.Nodes) == 0:
		return nil, p.errf(n, "%s.nodes: missing (target specs: groups, names or globs)", field)
	}
	return r, nil
}

// strings reads a string or a list of strings; a string may hold several
// comma-separated specs.
func (p parser) strings(v *yaml.Node, field string) ([]string, error) {
	items, err := p.oneOrList(v, field, "a target spec or a list of them")
	if err != nil {
		return nil, err
	}
	var out []string
	for i, it := range items {
		it = yamlnode.Deref(it)
		s, err := p.str(it, fmt.Sprintf("%s[%d]", field, i))
		if err != nil {
			return nil, err
		}
		for _, part := range strings.Split(s, ",") {
			if part = strings.TrimSpace(part); part != "" {
				out = append(out, part)
			}
		}
	}
	return out, nil
}

// oneOrList returns a scalar as a list of one, or a sequence's items;
// want says what either may be, for the error.
func (p parser) oneOrList(v *yaml.Node, field, want string) ([]*yaml.Node, error) {
	switch v.Kind {
	case yaml.ScalarNode:
		return []*yaml.Node{v}, nil
	case yaml.SequenceNode:
		return v.Content, nil
	}
	return nil, p.errf(v, "%s: want %s, got %s", field, want, yamlnode.KindName(v))
}

func (p parser) requires(v *yaml.Node, field string) ([]Requirement, error) {
	items, err := p.oneOrList(v, field, "a role name or a list of roles")
	if err != nil {
		return nil, err
	}
	var out []Requirement
	seen := map[string]bool{}
	for i, it := range items {
		it = yamlnode.Deref(it)
		f := fmt.Sprintf("%s[%d]", field, i)
		q := Requirement{Scope: ScopeNode, Line: it.Line}
		switch it.Kind {
		case yaml.ScalarNode:
			s, err := p.str(it, f)
			if err != nil {
				return nil, err
			}
			q.Role = s
		case yaml.MappingNode:
			for j := 0; j+1 < len(it.Content); j += 2 {
				k, val := it.Content[j], yamlnode.Deref(it.Content[j+1])
				switch k.Value {
				case "role":
					s, err := p.str(val, f+".role")
					if err != nil {
						return nil, err
					}
					q.Role = s
				case "scope":
					s, err := p.str(val, f+".scope")
					if err != nil {
						return nil, err
					}
					if Scope(s) != ScopeNode && Scope(s) != ScopeAny {
						return nil, p.errf(val, "%s.scope: %q is not a scope (want node or any)", f, s)
					}
					q.Scope = Scope(s)
				default:
					return nil, p.errf(k, "%s: unknown field %q (want role or scope)", f, k.Value)
				}
			}
			if q.Role == "" {
				return nil, p.errf(it, "%s.role: missing", f)
			}
		default:
			return nil, p.errf(it, "%s: want a role name or {role, scope}, got %s", f, yamlnode.KindName(it))
		}
		if seen[q.Role] {
			return nil, p.errf(it, "%s: role %q is required twice", f, q.Role)
		}
		seen[q.Role] = true
		out = append(out, q)
	}
	return out, nil
}

// action reads {command: ...} | {task: NAME, params: {...}} | {plan: NAME,
// params: {...}}, plus run_as and env.
func (p parser) action(v *yaml.Node, field string) (*Action, error) {
	if v.Kind != yaml.MappingNode {
		return nil, p.errf(v, "%s: want a mapping with command, task or plan, got %s", field, yamlnode.KindName(v))
	}
	a := &Action{}
	var kinds []string
	var paramsNode *yaml.Node
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], yamlnode.Deref(v.Content[i+1])
		f := field + "." + k.Value
		switch k.Value {
		case "command", "task", "plan":
			s, err := p.str(val, f)
			if err != nil {
				return nil, err
			}
			kinds = append(kinds, k.Value)
			switch k.Value {
			case "command":
				a.Kind, a.Spec.Command = muster.JobCommand, s
			case "task":
				a.Kind, a.Spec.Task = muster.JobTask, s
			case "plan":
				a.Kind, a.Spec.Plan = muster.JobPlan, s
			}
		case "params":
			paramsNode = val
		case "run_as":
			s, err := p.str(val, f)
			if err != nil {
				return nil, err
			}
			a.Spec.RunAs = s
		case "env":
			if val.Kind != yaml.MappingNode {
				return nil, p.errf(val, "%s: want a mapping of variable names to strings, got %s", f, yamlnode.KindName(val))
			}
			a.Spec.Env = map[string]string{}
			for j := 0; j+1 < len(val.Content); j += 2 {
				ek, ev := val.Content[j], yamlnode.Deref(val.Content[j+1])
				if ev.Kind != yaml.ScalarNode {
					return nil, p.errf(ev, "%s.%s: want a string, got %s", f, ek.Value, yamlnode.KindName(ev))
				}
				if strings.HasPrefix(ek.Value, "MUSTER_") {
					return nil, p.errf(ek, "%s.%s: MUSTER_ variables are set by muster", f, ek.Value)
				}
				a.Spec.Env[ek.Value] = ev.Value
			}
		default:
			return nil, p.errf(k, "%s: unknown field %q (want command, task or plan, with params, run_as, env)", field, k.Value)
		}
	}
	switch {
	case len(kinds) == 0:
		return nil, p.errf(v, "%s: want one of command, task or plan", field)
	case len(kinds) > 1:
		return nil, p.errf(v, "%s: %s are exclusive: give one", field, strings.Join(kinds, " and "))
	}
	if paramsNode != nil && !yamlnode.IsNull(paramsNode) {
		if a.Kind == muster.JobCommand {
			return nil, p.errf(paramsNode, "%s.params: a command takes no params", field)
		}
		if paramsNode.Kind != yaml.MappingNode {
			return nil, p.errf(paramsNode, "%s.params: want a mapping, got %s", field, yamlnode.KindName(paramsNode))
		}
		var params map[string]any
		if err := paramsNode.Decode(&params); err != nil {
			return nil, p.errf(paramsNode, "%s.params: %v", field, err)
		}
		// Through JSON, as the queue will store them (YAML maps of any
		// key type become errors here rather than at submit).
		b, err := json.Marshal(params)
		if err != nil {
			return nil, p.errf(paramsNode, "%s.params: %v", field, err)
		}
		params = nil
		if err := json.Unmarshal(b, &params); err != nil {
			return nil, p.errf(paramsNode, "%s.params: %v", field, err)
		}
		a.Spec.Params = params
	}
	if err := a.Spec.Validate(a.Kind); err != nil {
		return nil, p.errf(v, "%s: %v", field, err)
	}
	return a, nil
}

// Digest identifies a role's definition (what it runs and on what terms):
// jobs submitted for an unchanged role are its current jobs.
func (r *Role) Digest() string {
	reqs := make([]string, 0, len(r.Requires))
	for _, q := range r.Requires {
		reqs = append(reqs, q.Role+"@"+string(q.Scope))
	}
	sort.Strings(reqs)
	b, _ := json.Marshal(struct {
		Kind     muster.JobKind
		Spec     muster.JobSpec
		Requires []string
		Priority int
		Retries  int
	}{r.Run.Kind, r.Run.Spec, reqs, r.Priority, r.Retries})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:6])
}

// ErrNoNodes is returned by Plan when a role's selectors match nothing.
var ErrNoNodes = errors.New("no nodes")
