package deploy

import (
	"fmt"
	"strconv"
)

// The hooks a role may declare.
const (
	HookOnActive     = "on_active"
	HookOnNodeChange = "on_node_change"
)

// EnvChangedRun names the run whose result changed, for on_node_change:
// with the changed node-role and its state it identifies the change, so
// that a hook runs once per change.
const EnvChangedRun = "MUSTER_CHANGED_RUN"

// Hook is one hook to run on one node: Role's on_active on Node when the
// node-role became active, or Role's on_node_change on Node when a role
// it requires changed on another node (Env says which, and to what).
type Hook struct {
	Role string
	Name string // HookOnActive or HookOnNodeChange
	Node string
	// Env holds the MUSTER_CHANGED_* variables of on_node_change.
	Env map[string]string
}

// Key identifies the hook: a hook job whose tags give the same key (see
// HookKey) means it was submitted already.
func (h Hook) Key() string { return hookKey(h.Name, h.Role, h.Node, h.Env) }

// HookKey is the key of the hook a job tagged env runs on node, "" when
// the job is not a hook. The role digest is not part of it: callers keep
// only the jobs of a role's current definition, so a hook runs once per
// node-role and role version.
func HookKey(env map[string]string, node string) string {
	h := env[EnvHook]
	if h == "" {
		return ""
	}
	return hookKey(h, env[EnvRole], node, env)
}

func hookKey(hook, role, node string, env map[string]string) string {
	k := hook + "|" + role + "@" + node
	if hook == HookOnNodeChange {
		k += fmt.Sprintf("|%s@%s=%s#%s", env[EnvChangedRole], env[EnvChangedNode], env[EnvChangedState], env[EnvChangedRun])
	}
	return k
}

// Hooks derives, from the node-roles' runs (by NodeRole.Key), the hooks
// due and not done (done reports a key already submitted), in plan order:
//
//   - on_active on each node where the role is active;
//   - on_node_change on each node N where the role is active, for every
//     role it requires that reached active or error on another node M
//     after the role's run on N ended: N heard of M's change once it was
//     itself in place. A change is a run reaching a final state: the
//     same run retried to success is a new change, and so is a new run
//     (the role applied again with a new definition).
//
// It reads only the runs, never the time or memory of earlier calls, so
// any number of annealers derive the same hooks from the same store.
func Hooks(p *Plan, runs map[string]Run, done func(key string) bool) []Hook {
	var out []Hook
	add := func(h Hook) {
		if !done(h.Key()) {
			out = append(out, h)
		}
	}
	active := func(role, node string) (Run, bool) {
		r, ok := runs[NodeRole{Role: role, Node: node}.Key()]
		return r, ok && FromRun(r.State) == Active
	}
	for _, nr := range p.NodeRoles {
		r := p.Deployment.Role(nr.Role)
		if r.OnActive != nil {
			if _, ok := active(nr.Role, nr.Node); ok {
				add(Hook{Role: nr.Role, Name: HookOnActive, Node: nr.Node})
			}
		}
	}
	for _, nr := range p.NodeRoles {
		r := p.Deployment.Role(nr.Role)
		if r.OnNodeChange == nil {
			continue
		}
		mine, ok := active(nr.Role, nr.Node)
		if !ok || mine.FinishedAt.IsZero() {
			continue
		}
		for _, q := range r.Requires {
			for _, m := range p.Nodes[q.Role] {
				if m == nr.Node {
					continue
				}
				other, ok := runs[NodeRole{Role: q.Role, Node: m}.Key()]
				st := FromRun(other.State)
				if !ok || st != Active && st != Error || !other.FinishedAt.After(mine.FinishedAt) {
					continue
				}
				add(Hook{Role: nr.Role, Name: HookOnNodeChange, Node: nr.Node, Env: map[string]string{
					EnvChangedRole: q.Role, EnvChangedNode: m, EnvChangedState: string(st),
					EnvChangedRun: strconv.FormatInt(other.RunID, 10),
				}})
			}
		}
	}
	return out
}
