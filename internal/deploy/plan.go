package deploy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/muster-run/muster/internal/yamlnode"
)

// NodeRole is one role bound to one node.
type NodeRole struct {
	Role string `json:"role"`
	Node string `json:"node"`
	// Wave is the role's depth in the requirements: 0 for roles that
	// require nothing, else one more than the deepest role it requires.
	Wave int `json:"wave"`
}

// Key names a node-role, "role@node".
func (nr NodeRole) Key() string { return nr.Role + "@" + nr.Node }

// Plan is a deployment with its selectors resolved: the proposed
// node-roles and their order.
type Plan struct {
	Deployment *Deployment
	// Waves holds the role names by wave.
	Waves [][]string
	// Nodes maps each role to its nodes, in the order resolved.
	Nodes map[string][]string
	// NodeRoles lists every node-role by wave, then role (in file order),
	// then node.
	NodeRoles []NodeRole
	wave      map[string]int
}

// Resolver turns a role's target specs into node names (through the
// inventory).
type Resolver func(specs []string) ([]string, error)

// NewPlan resolves each role's nodes and orders the roles in waves. A
// role whose selectors match no node is an error naming it.
func NewPlan(d *Deployment, resolve Resolver) (*Plan, error) {
	p := &Plan{Deployment: d, Nodes: map[string][]string{}, wave: map[string]int{}}
	for _, r := range d.Roles {
		nodes, err := resolve(r.Nodes)
		if err != nil {
			return nil, yamlnode.Invalid(&yamlnode.Error{File: d.File, Line: r.Line, Msg: fmt.Sprintf("roles.%s.nodes: %v", r.Name, err)})
		}
		seen := map[string]bool{}
		var uniq []string
		for _, n := range nodes {
			if !seen[n] {
				seen[n] = true
				uniq = append(uniq, n)
			}
		}
		if len(uniq) == 0 {
			return nil, yamlnode.Invalid(&yamlnode.Error{File: d.File, Line: r.Line,
				Msg: fmt.Sprintf("roles.%s.nodes: %s: %q match no target", r.Name, ErrNoNodes, strings.Join(r.Nodes, ","))})
		}
		p.Nodes[r.Name] = uniq
	}
	var depth func(name string) int
	depth = func(name string) int {
		if w, ok := p.wave[name]; ok {
			return w
		}
		w := 0
		for _, q := range d.Role(name).Requires {
			w = max(w, depth(q.Role)+1) // Parse refused cycles
		}
		p.wave[name] = w
		return w
	}
	for _, r := range d.Roles {
		w := depth(r.Name)
		for len(p.Waves) <= w {
			p.Waves = append(p.Waves, nil)
		}
		p.Waves[w] = append(p.Waves[w], r.Name)
	}
	for w, roles := range p.Waves {
		for _, role := range roles {
			for _, n := range p.Nodes[role] {
				p.NodeRoles = append(p.NodeRoles, NodeRole{Role: role, Node: n, Wave: w})
			}
		}
	}
	return p, nil
}

// Wave is a role's wave.
func (p *Plan) Wave(role string) int { return p.wave[role] }

// Has reports whether node has role in the plan.
func (p *Plan) Has(role, node string) bool { return slices.Contains(p.Nodes[role], node) }

// Dep is one dependency of a job: the jobs of Role, per node (Each) or
// as a whole.
type Dep struct {
	Role string `json:"role"`
	Each bool   `json:"each"`
}

// Group is one job to submit: a role on some of its nodes, after the
// jobs of the roles it requires, each dependency per node (Each: the
// queue's after_node) or on the whole role (after). A role's nodes are
// grouped by how they depend: a node that has a role it requires at node
// scope waits for its own node's run; a node without it, or a requirement
// of scope any, waits for the role everywhere.
type Group struct {
	Role  string   `json:"role"`
	Nodes []string `json:"nodes"`
	Deps  []Dep    `json:"deps,omitempty"`
	// AfterEach says every dependency is per node.
	AfterEach bool `json:"after_each,omitempty"`
}

// Groups splits the node-roles to submit (want, by role) into jobs, in
// wave order: every group's dependencies are on roles of earlier waves.
func (p *Plan) Groups(want map[string][]string) []Group {
	var out []Group
	for _, roles := range p.Waves {
		for _, role := range roles {
			nodes := want[role]
			if len(nodes) == 0 {
				continue
			}
			r := p.Deployment.Role(role)
			bySig := map[string]*Group{}
			var order []string
			for _, n := range nodes {
				var deps []Dep
				var sig []string
				for _, q := range r.Requires {
					each := q.Scope == ScopeNode && p.Has(q.Role, n)
					deps = append(deps, Dep{Role: q.Role, Each: each})
					sig = append(sig, fmt.Sprintf("%s:%t", q.Role, each))
				}
				key := strings.Join(sig, ",")
				g, ok := bySig[key]
				if !ok {
					g = &Group{Role: role, Deps: deps}
					bySig[key] = g
					order = append(order, key)
				}
				g.Nodes = append(g.Nodes, n)
			}
			for _, key := range order {
				g := bySig[key]
				g.AfterEach = len(g.Deps) > 0
				for _, d := range g.Deps {
					g.AfterEach = g.AfterEach && d.Each
				}
				out = append(out, *g)
			}
		}
	}
	return out
}

// Select picks, in wave order, the node-roles to submit now: those in
// candidates (missing and alive) whose requirements are present (a run
// exists already) or selected too. The others are held, with the reason.
func (p *Plan) Select(candidates, present map[string]bool) (submit map[string][]string, held map[string]string) {
	submit, held = map[string][]string{}, map[string]string{}
	have := func(role, node string) bool {
		k := NodeRole{Role: role, Node: node}.Key()
		return present[k] || candidates[k] && held[k] == ""
	}
	for _, nr := range p.NodeRoles {
		k := nr.Key()
		if !candidates[k] {
			continue
		}
		r := p.Deployment.Role(nr.Role)
		for _, q := range r.Requires {
			if q.Scope == ScopeNode && p.Has(q.Role, nr.Node) {
				if !have(q.Role, nr.Node) {
					held[k] = fmt.Sprintf("requires %s on %s, which is not submitted", q.Role, nr.Node)
				}
				continue
			}
			for _, n := range p.Nodes[q.Role] {
				if !have(q.Role, n) {
					held[k] = fmt.Sprintf("requires %s everywhere; %s on %s is not submitted", q.Role, q.Role, n)
					break
				}
			}
		}
		if held[k] == "" {
			submit[nr.Role] = append(submit[nr.Role], nr.Node)
		}
	}
	return submit, held
}
