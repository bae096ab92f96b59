package task

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/muster-run/muster/internal/puppet"
)

// Redacted replaces sensitive values in output, as Bolt prints them.
const Redacted = "Sensitive [value redacted]"

// ParseCLIParams builds task parameters from `k=v` arguments or from the
// --params flag (paramsFlag, "" when not given): inline JSON, @file or "-"
// for stdin. A k=v value is parsed as JSON first; it is kept as the raw
// string when that fails or when the parsed value does not match the
// parameter's declared type (so `name=123` for a String stays "123"),
// unless only the parsed value has the type's base type (so `count=20` for
// an Integer[1, 10] stays 20, and validation says it is out of range).
// Numbers are kept as json.Number. md may be nil.
func ParseCLIParams(args []string, paramsFlag string, stdin io.Reader, md *Metadata) (map[string]any, error) {
	return ParseCLIParamsTyped(args, paramsFlag, stdin, md.paramType)
}

// ParseCLIParamsTyped is ParseCLIParams with the declared types given by
// typeOf, which returns nil for a parameter without a known type; typeOf
// may be nil (every value JSON-first). Plans use it with their own
// parameters' types.
func ParseCLIParamsTyped(args []string, paramsFlag string, stdin io.Reader, typeOf func(name string) puppet.Type) (map[string]any, error) {
	if paramsFlag != "" && len(args) > 0 {
		return nil, fmt.Errorf("parameters may be given as key=value arguments or with --params, not both")
	}
	if paramsFlag != "" {
		return parseParamsFlag(paramsFlag, stdin)
	}
	out := make(map[string]any, len(args))
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid parameter %q: expected key=value", a)
		}
		var t puppet.Type
		if typeOf != nil {
			t = typeOf(k)
		}
		out[k] = cliValue(v, t)
	}
	return out, nil
}

// paramType returns the declared type of a parameter, or nil.
func (md *Metadata) paramType(name string) puppet.Type {
	if md == nil || md.Parameters[name] == nil {
		return nil
	}
	return md.Parameters[name].Type
}

// cliValue is Bolt's PAL#parse_params: JSON first, the raw string when the
// JSON is invalid or does not match the declared type. When neither form
// matches, the JSON value is kept if it has the type's base type (only a
// range, length, size or pattern is wrong), for a precise error.
func cliValue(raw string, t puppet.Type) any {
	v, err := decodeJSON([]byte(raw))
	switch {
	case err != nil:
		return raw
	case t == nil || t.Check(v) == nil:
		return v
	case t.Check(raw) != nil && puppet.Loosen(t).Check(v) == nil:
		return v
	}
	return raw
}

// decodeJSON decodes exactly one JSON value, keeping numbers as json.Number.
func decodeJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("unexpected data after the JSON value")
	}
	return v, nil
}

func parseParamsFlag(flag string, stdin io.Reader) (map[string]any, error) {
	var data []byte
	var err error
	src := "--params"
	switch {
	case flag == "-":
		if stdin == nil {
			return nil, fmt.Errorf("--params -: no standard input")
		}
		src = "--params from standard input"
		data, err = io.ReadAll(stdin)
	case strings.HasPrefix(flag, "@"):
		src = "--params file " + flag[1:]
		data, err = os.ReadFile(flag[1:])
	default:
		data = []byte(flag)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	v, err := decodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid JSON: %v", src, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: expected a JSON object, got %s", src, jsonKind(v))
	}
	return m, nil
}

// ValidationError lists every problem found with a task's parameters.
type ValidationError struct {
	Task     string
	Problems []string
}

// Error lists the problems, one per line.
func (e *ValidationError) Error() string {
	var b strings.Builder
	n := "1 problem"
	if len(e.Problems) != 1 {
		n = fmt.Sprintf("%d problems", len(e.Problems))
	}
	fmt.Fprintf(&b, "invalid parameters for task %s (%s):", e.Task, n)
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p)
	}
	return b.String()
}

// Validate checks params against the metadata and returns a new map with
// defaults applied (for parameters missing or null). It reports every
// problem at once in a *ValidationError: reserved "_" keys, unknown
// parameters (only when the metadata declares parameters), missing required
// parameters and type mismatches. Sensitive values never appear in the
// error. md may be nil.
func (md *Metadata) Validate(taskName string, params map[string]any) (map[string]any, error) {
	out := make(map[string]any, len(params))
	for k, v := range params {
		out[k] = v
	}
	var problems []problem
	add := func(name, format string, args ...any) {
		problems = append(problems, problem{name, fmt.Sprintf(format, args...)})
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if strings.HasPrefix(k, "_") {
			add(k, "parameter %q is reserved: names starting with _ are metaparameters set by muster", k)
			delete(out, k)
		} else if md != nil && md.Parameters != nil && md.Parameters[k] == nil {
			msg := fmt.Sprintf("unknown parameter %q", k)
			if best := puppet.Closest(k, slices.Sorted(maps.Keys(md.Parameters))); best != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", best)
			}
			add(k, "%s", msg)
		}
	}
	if md != nil {
		for _, name := range slices.Sorted(maps.Keys(md.Parameters)) {
			p := md.Parameters[name]
			v, present := out[name]
			if (!present || v == nil) && p.HasDefault {
				v, present = puppet.DeepCopy(p.Default), true
				out[name] = v
			}
			if !present {
				if p.Required() {
					add(name, "parameter %q is required (%s)", name, p.Type)
				}
				continue
			}
			if err := p.Type.Check(v); err != nil {
				add(name, "parameter %q: %s", name, p.describeMismatch(err, v))
			}
		}
	}
	if len(problems) == 0 {
		return out, nil
	}
	sort.SliceStable(problems, func(i, j int) bool { return problems[i].name < problems[j].name })
	e := &ValidationError{Task: taskName}
	for _, p := range problems {
		e.Problems = append(e.Problems, p.msg)
	}
	return nil, e
}

type problem struct{ name, msg string }

// describeMismatch renders a type error, without the value (or any part of
// its path, which may hold keys of the value) when the parameter is
// sensitive.
func (p *Param) describeMismatch(err error, v any) string {
	if p.Sensitive {
		return fmt.Sprintf("expects %s, got %s (sensitive value redacted)", p.Type, puppet.ValueTypeName(v))
	}
	if te, ok := err.(*puppet.TypeError); ok {
		return te.ErrorWithValue()
	}
	return err.Error()
}

// Redact returns a copy of params with each sensitive parameter's value
// replaced by "Sensitive [value redacted]". md may be nil.
func (md *Metadata) Redact(params map[string]any) map[string]any {
	out := make(map[string]any, len(params))
	for k, v := range params {
		if md != nil && md.Parameters[k] != nil && md.Parameters[k].Sensitive {
			v = Redacted
		}
		out[k] = v
	}
	return out
}

// SensitiveValues returns the string forms of the sensitive parameters'
// values (raw strings and their JSON encodings), for scrubbing them from
// task output and logs.
func (md *Metadata) SensitiveValues(params map[string]any) []string {
	var out []string
	if md == nil {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if p := md.Parameters[k]; p != nil && p.Sensitive && params[k] != nil {
			if s, ok := params[k].(string); ok && s != "" {
				out = append(out, s)
			} else if !ok {
				out = append(out, puppet.CompactJSON(params[k]))
			}
		}
	}
	return out
}
