package api

// change.go: the submission fields of change-driven continuous jobs
// (fingerprint, on_change, facts_used, depends_on_result).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// The on-change action kinds of a submission.
const (
	OnChangeCommand  = "command"
	OnChangeTask     = "task"
	OnChangeAgentRun = "agent-run"
)

// OnChangeRequest is the action a continuous job enqueues for a node whose
// fingerprint changed: "command" (Spec.Command), "task" (Spec.Task and
// Spec.Params, checked and with sensitive parameters sealed as a task
// job's are) or "agent-run" (no spec: the node's agent runs now, as with
// POST /api/v1/nodes/{certname}/run).
type OnChangeRequest struct {
	Kind string         `json:"kind"`
	Spec muster.JobSpec `json:"spec,omitzero"`
}

// decodeChangeField decodes one of the change fields; ok is false for
// another field.
func decodeChangeField(req *SubmitRequest, k string, raw json.RawMessage) (ok bool, err error) {
	isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
	switch k {
	case "fingerprint":
		return true, unmarshalField(k, raw, &req.Fingerprint)
	case "depends_on_result":
		return true, unmarshalField(k, raw, &req.DependsOnResult)
	case "facts_used":
		if isNull {
			return true, nil
		}
		return true, unmarshalField(k, raw, &req.FactsUsed)
	case "on_change":
		if isNull {
			return true, nil
		}
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return true, fieldErr(k, "want an object {\"kind\": \"command\"|\"task\"|\"agent-run\", \"spec\": {...}}, got %s", jsonKind(raw))
		}
		oc := &OnChangeRequest{}
		for f, v := range m {
			switch f {
			case "kind":
				if err := unmarshalField("on_change.kind", v, &oc.Kind); err != nil {
					return true, err
				}
			case "spec":
				spec, err := muster.DecodeJobSpec(v)
				if err != nil {
					fe := specError(err)
					fe.Field = "on_change." + fe.Field
					return true, fe
				}
				oc.Spec = spec
			default:
				return true, fieldErr("on_change."+f, "unknown field (want kind and spec)")
			}
		}
		req.OnChange = oc
		return true, nil
	}
	return false, nil
}

// validateChange checks the change fields, naming the field at fault.
func (req *SubmitRequest) validateChange() error {
	if req.Fingerprint == "" && req.OnChange == nil && len(req.FactsUsed) == 0 && req.DependsOnResult == 0 {
		return nil
	}
	if !req.Continuous {
		return fieldErr("continuous", "fingerprint, on_change, facts_used and depends_on_result are for continuous jobs")
	}
	if req.Pull {
		return fieldErr("pull", "a pulled command goes to the agents at once: change-driven loops are queued jobs")
	}
	if req.Fingerprint != "" {
		if _, err := muster.ParseFingerprint(req.Fingerprint); err != nil {
			return fieldErr("fingerprint", "%v", err)
		}
	}
	if oc := req.OnChange; oc != nil {
		if req.Fingerprint == "" {
			return fieldErr("on_change", "needs a fingerprint, which says what a change is")
		}
		switch oc.Kind {
		case OnChangeCommand, OnChangeTask:
			if err := oc.Spec.Validate(muster.JobKind(oc.Kind)); err != nil {
				return fieldErr("on_change.spec", "%v", err)
			}
		case OnChangeAgentRun:
			if !isZeroSpec(oc.Spec) {
				return fieldErr("on_change.spec", "agent-run takes no spec: the agent runs its own pull command")
			}
		default:
			return fieldErr("on_change.kind", "unknown action %q (want command, task or agent-run)", oc.Kind)
		}
	}
	if len(req.FactsUsed) > muster.MaxFactsUsed {
		return fieldErr("facts_used", "%d facts; at most %d", len(req.FactsUsed), muster.MaxFactsUsed)
	}
	for i, f := range req.FactsUsed {
		if f == "" || strings.Contains(f, "..") || strings.HasPrefix(f, ".") || strings.HasSuffix(f, ".") ||
			strings.ContainsAny(f, "\x00\n,") {
			return fieldErr(fmt.Sprintf("facts_used[%d]", i), "%q is not a dotted fact name such as os.release", f)
		}
	}
	if req.DependsOnResult < 0 {
		return fieldErr("depends_on_result", "%d is not a job id (a positive integer)", req.DependsOnResult)
	}
	return nil
}

func isZeroSpec(s muster.JobSpec) bool {
	b, _ := json.Marshal(s)
	return string(b) == "{}"
}

// onChange prepares a submission's on-change action as a job of its own
// is prepared: a task's parameters checked, secrets sealed.
func (s *Server) onChange(ctx context.Context, who muster.Token, oc *OnChangeRequest) (*muster.OnChange, error) {
	if oc == nil {
		return nil, nil
	}
	if oc.Kind == OnChangeAgentRun {
		spec, err := json.Marshal(muster.JobSpec{})
		return &muster.OnChange{Kind: muster.JobPull, Spec: spec}, err
	}
	kind, spec := muster.JobKind(oc.Kind), oc.Spec
	if s.cfg.Prepare != nil {
		if err := s.cfg.Prepare(ctx, who, kind, &spec); err != nil {
			var fe *FieldError
			switch {
			case errors.As(err, &fe):
				fe.Field = "on_change." + fe.Field
				return nil, fe
			case errors.Is(err, ErrForbidden):
				return nil, &apiError{http.StatusForbidden, CodeForbidden, "on_change.spec: " + err.Error(), nil}
			}
			return nil, fieldErr("on_change.spec", "%v", err)
		}
	}
	if len(spec.Secrets) > 0 {
		if s.cfg.Sealer == nil {
			return nil, fieldErr("on_change.spec.secrets", "this server has no secret key, so it cannot accept secrets")
		}
		sealed, err := s.cfg.Sealer.Seal(spec.Secrets)
		if err != nil {
			return nil, fmt.Errorf("sealing secrets: %w", err)
		}
		spec.Secrets, spec.Sealed = nil, sealed
	}
	raw, err := json.Marshal(spec)
	return &muster.OnChange{Kind: kind, Spec: raw}, err
}

// FingerprintView is one node's stored fingerprint of a change-driven job:
// its value, the run that produced it, when it last changed and how many
// times it has (the first result counts).
type FingerprintView struct {
	Node      string    `json:"node"`
	Value     string    `json:"value"`
	RunID     int64     `json:"run_id"`
	ChangedAt time.Time `json:"changed_at"`
	Changes   int       `json:"changes"`
}

// FingerprintList is GET /api/v1/jobs/{id}/fingerprints, by node.
type FingerprintList struct {
	Fingerprints []FingerprintView `json:"fingerprints"`
}

// handleFingerprints lists a job's stored fingerprints.
func (s *Server) handleFingerprints(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	id, err := jobID(r)
	if err != nil {
		return err
	}
	if _, err := s.getJob(r.Context(), id); err != nil {
		return err
	}
	fps, err := s.store.ListFingerprints(r.Context(), id)
	if err != nil {
		return err
	}
	out := FingerprintList{Fingerprints: []FingerprintView{}}
	for _, f := range fps {
		out.Fingerprints = append(out.Fingerprints, FingerprintView{Node: f.Node, Value: f.Value, RunID: f.RunID,
			ChangedAt: f.ChangedAt, Changes: f.Changes})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// Fingerprints lists a change-driven job's stored fingerprints.
func (c *Client) Fingerprints(ctx context.Context, id int64) (FingerprintList, error) {
	var out FingerprintList
	err := c.call(ctx, fmt.Sprintf("get the fingerprints of job %d", id), "GET", fmt.Sprintf("/api/v1/jobs/%d/fingerprints", id), nil, nil, &out)
	return out, err
}
