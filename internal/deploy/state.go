package deploy

import (
	"time"

	"github.com/muster-run/muster"
)

// State is a node-role's state, Crowbar's: proposed -> blocked | todo ->
// transition -> active | error.
type State string

// The node-role states.
const (
	Proposed   State = "proposed"   // planned, not submitted
	Skipped    State = "skipped"    // not submitted: its node is not alive
	Blocked    State = "blocked"    // waits for what it requires, or one of them failed
	Todo       State = "todo"       // ready, queued
	Transition State = "transition" // running
	Active     State = "active"     // applied
	Error      State = "error"      // failed
)

// The environment variables that tag a deployment's jobs (and that its
// commands see).
const (
	EnvDeployment = "MUSTER_DEPLOYMENT"
	EnvRole       = "MUSTER_ROLE"
	EnvDigest     = "MUSTER_ROLE_DIGEST"
	EnvHook       = "MUSTER_HOOK"
	// The hooks of on_node_change see which node-role changed, and to what.
	EnvChangedRole  = "MUSTER_CHANGED_ROLE"
	EnvChangedNode  = "MUSTER_CHANGED_NODE"
	EnvChangedState = "MUSTER_CHANGED_STATE"
)

// FromRun is the state of a node-role served by a run in state rs.
func FromRun(rs muster.RunState) State {
	switch rs {
	case muster.RunWaiting, muster.RunBlocked:
		return Blocked
	case muster.RunScheduled, muster.RunPending:
		return Todo
	case muster.RunRunning, muster.RunRetrying:
		return Transition
	case muster.RunSucceeded:
		return Active
	case muster.RunFailed, muster.RunCancelled:
		return Error
	}
	return Proposed
}

// Unsubmitted is the state of a node-role without a run: skipped while
// its node is not alive, else proposed.
func Unsubmitted(alive bool) State {
	if alive {
		return Proposed
	}
	return Skipped
}

// Final reports whether the annealer has nothing more to do for s without
// an operator (or the node coming back).
func (s State) Final() bool {
	return s == Active || s == Error || s == Skipped
}

// Alive reports whether a pull node that last checked in at last is alive
// at now: silent for no longer than threshold. Nodes never seen (zero
// time) are not alive.
func Alive(last, now time.Time, threshold time.Duration) bool {
	return !last.IsZero() && now.Sub(last) <= threshold
}

// Run is what status knows of the run serving a node-role.
type Run struct {
	JobID      int64           `json:"job_id"`
	RunID      int64           `json:"run_id"`
	State      muster.RunState `json:"run_state"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  time.Time       `json:"created_at,omitzero"`
	StartedAt  time.Time       `json:"started_at,omitzero"`
	FinishedAt time.Time       `json:"finished_at,omitzero"`
}

// NodeRoleStatus is one node-role in a status.
type NodeRoleStatus struct {
	Node   string `json:"node"`
	State  State  `json:"state"`
	Reason string `json:"reason,omitempty"`
	Run    *Run   `json:"run,omitempty"`
}

// RoleStatus is one role in a status, its node-roles in plan order.
type RoleStatus struct {
	Role     string           `json:"role"`
	Wave     int              `json:"wave"`
	Requires []string         `json:"requires,omitempty"`
	Counts   map[State]int    `json:"counts"`
	Nodes    []NodeRoleStatus `json:"nodes"`
}

// Status is a deployment's tree of roles and node-roles.
type Status struct {
	Name      string        `json:"name"`
	File      string        `json:"file"`
	Roles     []RoleStatus  `json:"roles"`
	Counts    map[State]int `json:"counts"`
	Converged bool          `json:"converged"`
}

// NewStatus derives every node-role's state: from its run when runs has
// one (by NodeRole.Key), else skipped or proposed by alive.
func NewStatus(p *Plan, runs map[string]Run, alive func(node string) bool) Status {
	st := Status{Name: p.Deployment.Name, File: p.Deployment.File, Counts: map[State]int{}, Converged: true}
	byRole := map[string]*RoleStatus{}
	for _, roles := range p.Waves {
		for _, role := range roles {
			rs := RoleStatus{Role: role, Wave: p.Wave(role), Counts: map[State]int{}}
			for _, q := range p.Deployment.Role(role).Requires {
				s := q.Role
				if q.Scope == ScopeAny {
					s += " (any node)"
				}
				rs.Requires = append(rs.Requires, s)
			}
			st.Roles = append(st.Roles, rs)
		}
	}
	for i := range st.Roles {
		byRole[st.Roles[i].Role] = &st.Roles[i]
	}
	for _, nr := range p.NodeRoles {
		ns := NodeRoleStatus{Node: nr.Node}
		if r, ok := runs[nr.Key()]; ok {
			r := r
			ns.Run = &r
			ns.State = FromRun(r.State)
			if ns.State == Blocked || ns.State == Error {
				ns.Reason = r.Error
			}
			if ns.State == Blocked && ns.Reason == "" {
				ns.Reason = "waiting for " + requiresText(p, nr.Role)
			}
		} else {
			ns.State = Unsubmitted(alive(nr.Node))
			if ns.State == Skipped {
				ns.Reason = "not alive"
			}
		}
		rs := byRole[nr.Role]
		rs.Nodes = append(rs.Nodes, ns)
		rs.Counts[ns.State]++
		st.Counts[ns.State]++
		if !converged(ns.State) {
			st.Converged = false
		}
	}
	return st
}

// converged: nothing will change without an operator. A blocked run is
// settled once a run it depends on failed (its reason says so), but it
// cannot be told from one still waiting here, so blocked counts as
// converged only in the tree as a whole, when nothing is queued or
// running (see Settled).
func converged(s State) bool { return s != Todo && s != Transition && s != Proposed }

// Settled reports whether the deployment has stopped moving: no node-role
// is queued, running or unsubmitted, and every blocked one waits on an
// error (directly or through other blocked node-roles).
func (st Status) Settled() bool {
	if !st.Converged {
		return false
	}
	return st.Counts[Blocked] == 0 || st.Counts[Error] > 0 || st.Counts[Skipped] > 0
}

func requiresText(p *Plan, role string) string {
	s := ""
	for i, q := range p.Deployment.Role(role).Requires {
		if i > 0 {
			s += ", "
		}
		s += q.Role
	}
	return s
}
