package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

// FieldError is invalid input, named by the JSON path of the field at
// fault ("targets", "spec.command", "body" for the request as a whole).
type FieldError struct {
	Field string
	Msg   string
	Err   error // the cause, if any (an *http.MaxBytesError, say)
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap returns the cause.
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// submitFields are the fields a SubmitRequest accepts, matched exactly.
var submitFields = map[string]bool{
	"kind": true, "targets": true, "spec": true, "priority": true, "run_at": true, "every": true,
	"continuous": true, "retries": true, "timeout": true, "on_lease_expiry": true, "pull": true,
	"after": true, "after_each": true, "after_node": true, "fingerprint": true, "on_change": true, "facts_used": true,
	"depends_on_result": true,
}

// DecodeSubmit reads a SubmitRequest strictly: one JSON object, field
// names matched exactly, unknown fields and wrong types rejected. Every
// error is a *FieldError naming the field. It checks syntax and types
// only; SubmitRequest.Validate checks the values.
func DecodeSubmit(r io.Reader) (SubmitRequest, error) {
	var req SubmitRequest
	fields, err := decodeObject(r)
	if err != nil {
		return req, err
	}
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !submitFields[k] {
			return req, fieldErr(fieldName(k), "unknown field %q (want one of kind, targets, spec, priority, run_at, "+
				"every, continuous, retries, timeout, on_lease_expiry, pull, after, after_each, after_node, fingerprint, on_change, "+
				"facts_used, depends_on_result)", k)
		}
	}
	for _, k := range names {
		raw := fields[k]
		if err := decodeSubmitField(&req, k, raw); err != nil {
			return SubmitRequest{}, err
		}
	}
	return req, nil
}

// fieldName names a field for an error; an empty name shows as "".
func fieldName(k string) string {
	if k == "" {
		return `""`
	}
	return k
}

// decodeObject reads exactly one JSON object into its raw fields.
func decodeObject(r io.Reader) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(r)
	var fields map[string]json.RawMessage
	if err := dec.Decode(&fields); err != nil {
		return nil, bodyError(err)
	}
	if fields == nil {
		return nil, fieldErr("body", "want a JSON object, got null")
	}
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, bodyError(err)
		}
		return nil, fieldErr("body", "trailing data after the JSON object")
	}
	return fields, nil
}

// bodyError describes a failure to read the body as a JSON object.
func bodyError(err error) *FieldError {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &FieldError{Field: "body", Msg: fmt.Sprintf("larger than the limit of %d bytes", mbe.Limit), Err: err}
	case errors.Is(err, io.EOF):
		return fieldErr("body", "empty request body (want a JSON object)")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fieldErr("body", "the JSON object is cut short")
	case errors.As(err, &syn):
		return fieldErr("body", "invalid JSON at byte %d: %s", syn.Offset, strings.TrimPrefix(syn.Error(), "json: "))
	case errors.As(err, &typ) && typ.Field == "":
		return fieldErr("body", "want a JSON object, got %s", typ.Value)
	case errors.As(err, &typ):
		return fieldErr(typ.Field, "want %s, got %s", typeName(typ.Type), typ.Value)
	}
	return &FieldError{Field: "body", Msg: "cannot read the request body: " + err.Error(), Err: err}
}

func decodeSubmitField(req *SubmitRequest, k string, raw json.RawMessage) error {
	if ok, err := decodeChangeField(req, k, raw); ok {
		return err
	}
	isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
	switch k {
	case "kind":
		var s string
		if err := unmarshalField(k, raw, &s); err != nil {
			return err
		}
		req.Kind = muster.JobKind(s)
	case "targets":
		t, err := decodeTargets(raw)
		if err != nil {
			var fe *FieldError
			if errors.As(err, &fe) {
				return fe
			}
			return fieldErr("targets", "%v", err)
		}
		req.Targets = t
	case "spec":
		if isNull {
			return nil
		}
		spec, err := muster.DecodeJobSpec(raw)
		if err != nil {
			return specError(err)
		}
		req.Spec = spec
	case "priority":
		return unmarshalField(k, raw, &req.Priority)
	case "retries":
		return unmarshalField(k, raw, &req.Retries)
	case "continuous":
		return unmarshalField(k, raw, &req.Continuous)
	case "pull":
		return unmarshalField(k, raw, &req.Pull)
	case "after_each":
		return unmarshalField(k, raw, &req.AfterEach)
	case "after", "after_node":
		if isNull {
			return nil
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return fieldErr(k, "want a list of job ids, got %s", jsonKind(raw))
		}
		ids := make([]int64, 0, len(items))
		for i, it := range items {
			var id int64
			if json.Unmarshal(it, &id) != nil {
				return fieldErr(fmt.Sprintf("%s[%d]", k, i), "want a job id (a positive integer), got %s", jsonKind(it))
			}
			ids = append(ids, id)
		}
		if k == "after" {
			req.After = ids
		} else {
			req.AfterNode = ids
		}
	case "on_lease_expiry":
		var s string
		if err := unmarshalField(k, raw, &s); err != nil {
			return err
		}
		req.OnLeaseExpiry = muster.LeasePolicy(s)
	case "run_at":
		var s string
		if err := unmarshalField(k, raw, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return fieldErr(k, "invalid time %q (want RFC 3339, such as \"2030-01-02T15:04:05Z\")", s)
		}
		req.RunAt = t
	case "every", "timeout":
		var s string
		if err := unmarshalField(k, raw, &s); err != nil {
			return err
		}
		d, err := parseDuration(s)
		if err != nil {
			return fieldErr(k, "%v", err)
		}
		switch {
		case k == "every" && d <= 0:
			return fieldErr(k, "%q is no interval: a recurring job needs at least 1s (leave \"every\" out for a one-off job)", s)
		case k == "timeout" && d > 0 && d < time.Second:
			return fieldErr(k, "%q is too short: use at least 1s, or leave \"timeout\" out for no limit", s)
		}
		if k == "every" {
			req.Every = Duration(d)
		} else {
			req.Timeout = Duration(d)
		}
	}
	return nil
}

// unmarshalField decodes one scalar field, naming it in any error.
func unmarshalField(field string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		var typ *json.UnmarshalTypeError
		if errors.As(err, &typ) {
			return fieldErr(field, "want %s, got %s", typeName(typ.Type), typ.Value)
		}
		return fieldErr(field, "%s", strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}

// decodeTargets reads a target spec string or a list of strings.
func decodeTargets(raw []byte) (Targets, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return Targets{}, fieldErr("targets", "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		return Targets{Spec: s}, nil
	case len(raw) > 0 && raw[0] == '[':
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return Targets{}, fieldErr("targets", "%s", strings.TrimPrefix(err.Error(), "json: "))
		}
		nodes := make([]string, 0, len(items))
		for i, it := range items {
			var s string
			if json.Unmarshal(it, &s) != nil {
				return Targets{}, fieldErr(fmt.Sprintf("targets[%d]", i), "want a string, got %s", jsonKind(it))
			}
			nodes = append(nodes, s)
		}
		return Targets{Nodes: nodes}, nil
	case bytes.Equal(raw, []byte("null")):
		return Targets{}, nil
	}
	return Targets{}, fieldErr("targets", "want a target spec string or a list of node names, got %s", jsonKind(raw))
}

// specError names the spec field a JobSpec decoding error is about.
func specError(err error) *FieldError {
	var typ *json.UnmarshalTypeError
	var b64 base64.CorruptInputError
	msg := strings.TrimPrefix(strings.TrimPrefix(err.Error(), "job spec: "), "json: ")
	switch {
	case errors.As(err, &typ) && typ.Field != "":
		return fieldErr("spec."+typ.Field, "want %s, got %s", typeName(typ.Type), typ.Value)
	case errors.As(err, &typ):
		return fieldErr("spec", "want a JSON object, got %s", typ.Value)
	case errors.As(err, &b64):
		return fieldErr("spec.script_body", "invalid base64 at byte %d", int64(b64))
	case strings.HasPrefix(msg, "unknown field "):
		name := strings.Trim(strings.TrimPrefix(msg, "unknown field "), `"`)
		return fieldErr("spec."+name, "%s", msg)
	}
	return fieldErr("spec", "%s", msg)
}

// typeName says in words what a Go type expects in JSON.
func typeName(t reflect.Type) string {
	if t == nil {
		return "a value"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return "a base64 string"
		}
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "a " + t.String()
}

// jsonKind names the kind of a JSON value.
func jsonKind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '[':
		return "array"
	case '{':
		return "object"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

// maxRetries bounds a job's retries.
const maxRetries = 100

// Validate checks the request's values, naming the field at fault. It
// does not resolve targets.
func (req *SubmitRequest) Validate() error {
	if req.Kind == "" {
		return fieldErr("kind", "required (command, task, script or plan)")
	}
	if req.Kind == muster.JobPull {
		return fieldErr("kind", "pull runs are for signed nodes' agents: queue them with POST /api/v1/pull-runs "+
			"or POST /api/v1/nodes/{certname}/run")
	}
	if !req.Kind.Valid() {
		return fieldErr("kind", "unknown job kind %q (want command, task, script or plan)", req.Kind)
	}
	if strings.TrimSpace(req.Targets.Spec) == "" && len(req.Targets.Nodes) == 0 {
		return fieldErr("targets", "required: a target spec such as \"web*,db1\" or a list of node names")
	}
	for i, n := range req.Targets.Nodes {
		if strings.TrimSpace(n) == "" {
			return fieldErr(fmt.Sprintf("targets[%d]", i), "empty target name")
		}
	}
	if err := req.Spec.Validate(req.Kind); err != nil {
		return fieldErr("spec", "%v", err)
	}
	if req.Pull {
		switch {
		case req.Kind != muster.JobCommand:
			return fieldErr("pull", "only a command job can be pulled: the nodes' agents run commands (not %s jobs)", req.Kind)
		case req.Spec.RunAs != "" || len(req.Spec.Secrets) > 0:
			return fieldErr("pull", "a pulled command runs as the agent's user: run_as and sudo passwords do not apply")
		}
	}
	switch {
	case req.Retries < 0 || req.Retries > maxRetries:
		return fieldErr("retries", "%d is out of range 0..%d", req.Retries, maxRetries)
	case req.Every < 0:
		return fieldErr("every", "must not be negative")
	case req.Timeout < 0:
		return fieldErr("timeout", "must not be negative")
	case req.Every > 0 && req.Every < Duration(time.Second):
		return fieldErr("every", "%v is too short (at least 1s)", time.Duration(req.Every))
	case req.Every > 0 && req.Continuous:
		return fieldErr("continuous", "a job is either recurring (every) or continuous, not both")
	}
	switch req.OnLeaseExpiry {
	case "", muster.LeaseRetry, muster.LeaseFail:
	default:
		return fieldErr("on_lease_expiry", "unknown policy %q (want retry or fail)", req.OnLeaseExpiry)
	}
	if err := req.validateAfter(); err != nil {
		return err
	}
	return req.validateChange()
}

// validateAfter checks the jobs a submission runs after.
func (req *SubmitRequest) validateAfter() error {
	switch {
	case req.AfterEach && len(req.After) == 0:
		return fieldErr("after_each", "makes the dependencies in \"after\" per node, but there are none")
	case len(req.After)+len(req.AfterNode) > muster.MaxAfter:
		return fieldErr("after", "%d jobs; a job may run after at most %d", len(req.After)+len(req.AfterNode), muster.MaxAfter)
	case len(req.After)+len(req.AfterNode) > 0 && req.Pull:
		return fieldErr("after", "a pulled command goes to the agents at once: dependencies are for queued jobs")
	}
	seen := map[int64]bool{}
	for _, l := range []struct {
		name string
		ids  []int64
	}{{"after", req.After}, {"after_node", req.AfterNode}} {
		for i, id := range l.ids {
			switch {
			case id <= 0:
				return fieldErr(fmt.Sprintf("%s[%d]", l.name, i), "%d is not a job id (a positive integer)", id)
			case seen[id]:
				return fieldErr(fmt.Sprintf("%s[%d]", l.name, i), "job %d is listed twice", id)
			}
			seen[id] = true
		}
	}
	return nil
}
