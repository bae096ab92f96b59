package muster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// JobSpec is what a job runs on each of its nodes: the decoded form of
// Job.Spec, the same for every kind.
//
// Secrets (a sudo password, a task's sensitive parameters) travel in
// Secrets only on their way into the server, which seals them into Sealed
// before the spec reaches the Store; a stored spec never holds them in
// plain text, and Redacted is what the API shows.
type JobSpec struct {
	// Command is the shell command of a command job.
	Command string `json:"command,omitempty"`
	// Script is a script job's file name (shown as the result's object);
	// ScriptBody is its content (base64 in JSON) and Args its arguments.
	Script     string   `json:"script,omitempty"`
	ScriptBody []byte   `json:"script_body,omitempty"`
	Args       []string `json:"args,omitempty"`
	// Task or Plan names what a task or plan job runs, with Params. A plan
	// job runs the plan once per node with its "targets" parameter set to
	// that node.
	Task   string         `json:"task,omitempty"`
	Plan   string         `json:"plan,omitempty"`
	Params map[string]any `json:"params,omitempty"`
	// Concurrency is how many targets each step of a plan job acts on at
	// once (0: the server's default).
	Concurrency int `json:"concurrency,omitempty"`
	// RunAs runs the action as this user through sudo; Env adds
	// environment variables (command and script jobs).
	RunAs string            `json:"run_as,omitempty"`
	Env   map[string]string `json:"env,omitempty"`
	// Secrets maps SecretSudoPassword or SecretParam(name) to a value.
	Secrets map[string]string `json:"secrets,omitempty"`
	// Sealed is Secrets encrypted by the server (never by a client).
	Sealed string `json:"sealed,omitempty"`
	// SuccessCodes are the exit codes that count as success for a pull
	// job's run (pull jobs only; empty: the server's pull configuration
	// decides, and without one only 0 succeeds).
	SuccessCodes []int `json:"success_codes,omitempty"`
	// LocalTargets is set by the server (never by a client) when the job
	// may act on the server's own machine: an admin submitted it to a
	// server started with --allow-local-targets. It covers the targets a
	// plan job reaches as it runs, not only the job's nodes.
	LocalTargets bool `json:"local_targets,omitempty"`
}

// SecretSudoPassword is the Secrets key of the sudo password.
const SecretSudoPassword = "sudo_password"

// SecretParam is the Secrets key of a sensitive task or plan parameter.
func SecretParam(name string) string { return "param:" + name }

// maxScriptBody bounds a script job's content (the spec is stored with
// the job).
const maxScriptBody = 4 << 20

// DecodeJobSpec parses a spec strictly: unknown fields are errors, named
// by their JSON path.
func DecodeJobSpec(data []byte) (JobSpec, error) {
	var s JobSpec
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return JobSpec{}, fmt.Errorf("job spec: %w", err)
	}
	if dec.More() {
		return JobSpec{}, fmt.Errorf("job spec: trailing data after the JSON object")
	}
	// Empty lists and maps are absent ones: what encodes without them
	// decodes to the same spec.
	if len(s.ScriptBody) == 0 {
		s.ScriptBody = nil
	}
	if len(s.Args) == 0 {
		s.Args = nil
	}
	if len(s.Params) == 0 {
		s.Params = nil
	}
	if len(s.Env) == 0 {
		s.Env = nil
	}
	if len(s.Secrets) == 0 {
		s.Secrets = nil
	}
	if len(s.SuccessCodes) == 0 {
		s.SuccessCodes = nil
	}
	return s, nil
}

// Validate checks that s has what a job of kind needs and nothing that
// belongs to another kind.
func (s *JobSpec) Validate(kind JobKind) error {
	has := map[string]bool{
		"command": s.Command != "", "script": s.Script != "" || len(s.ScriptBody) > 0 || len(s.Args) > 0,
		"task": s.Task != "", "plan": s.Plan != "", "params": len(s.Params) > 0,
	}
	if kind == JobPull {
		return s.validatePull()
	}
	need := map[JobKind][]string{
		JobCommand: {"command"}, JobScript: {"script"}, JobTask: {"task"}, JobPlan: {"plan"},
	}[kind]
	if need == nil {
		return fmt.Errorf("unknown job kind %q (want command, task, script, plan or pull)", kind)
	}
	allowed := map[string]bool{need[0]: true}
	if kind == JobTask || kind == JobPlan {
		allowed["params"] = true
	}
	for _, f := range []string{"command", "script", "task", "plan", "params"} {
		if has[f] && !allowed[f] {
			return fmt.Errorf("a %s job takes no %q", kind, f)
		}
	}
	switch {
	case kind == JobCommand && strings.TrimSpace(s.Command) == "":
		return fmt.Errorf("a command job needs a non-empty \"command\"")
	case kind == JobTask && strings.TrimSpace(s.Task) == "":
		return fmt.Errorf("a task job needs \"task\" (a task name such as mymod::deploy)")
	case kind == JobPlan && strings.TrimSpace(s.Plan) == "":
		return fmt.Errorf("a plan job needs \"plan\" (a plan name such as mymod::deploy)")
	case kind == JobScript && (s.Script == "" || len(s.ScriptBody) == 0):
		return fmt.Errorf("a script job needs \"script\" (its name) and \"script_body\" (its content)")
	case len(s.ScriptBody) > maxScriptBody:
		return fmt.Errorf("script_body is %d bytes; the limit is %d", len(s.ScriptBody), maxScriptBody)
	case kind == JobPlan && s.Params["targets"] != nil:
		return fmt.Errorf("a plan job sets the plan's \"targets\" parameter itself, to each node in turn")
	case s.Sealed != "":
		return fmt.Errorf("\"sealed\" is set by the server; send secrets in \"secrets\"")
	case s.Concurrency < 0:
		return fmt.Errorf("concurrency must be 0 (the server's default) or more, got %d", s.Concurrency)
	case s.Concurrency > 0 && kind != JobPlan:
		return fmt.Errorf("concurrency applies to plan jobs only: each other job acts on one node per run")
	case s.LocalTargets:
		return fmt.Errorf("\"local_targets\" is set by the server, for admins on a server started with --allow-local-targets")
	case len(s.SuccessCodes) > 0:
		return fmt.Errorf("success_codes applies to pull jobs only")
	}
	for k := range s.Env {
		if k == "" || strings.ContainsAny(k, "= \t\n") {
			return fmt.Errorf("env: invalid variable name %q", k)
		}
	}
	for k := range s.Secrets {
		if k != SecretSudoPassword && !strings.HasPrefix(k, "param:") || k == "param:" {
			return fmt.Errorf("secrets: unknown key %q (want %q or \"param:NAME\")", k, SecretSudoPassword)
		}
		if name := strings.TrimPrefix(k, "param:"); name != k && s.Params[name] != nil {
			return fmt.Errorf("parameter %q is given both in params and in secrets", name)
		}
	}
	return nil
}

// Object is what a result of this spec names as its object: the command,
// script, task or plan.
func (s *JobSpec) Object(kind JobKind) string {
	switch kind {
	case JobCommand:
		return s.Command
	case JobScript:
		return s.Script
	case JobTask:
		return s.Task
	case JobPlan:
		return s.Plan
	case JobPull:
		return "pull run"
	}
	return ""
}

// validatePull checks a pull job's spec: empty, or a command and success
// codes. The agent runs what the server hands it with /bin/sh -c as its
// own user, so nothing else applies.
func (s *JobSpec) validatePull() error {
	switch {
	case s.Script != "" || len(s.ScriptBody) > 0 || len(s.Args) > 0:
		return fmt.Errorf("a pull job takes no \"script\": its agent runs a command")
	case s.Plan != "":
		return fmt.Errorf("a pull job takes no plan: its agent runs a command or a task")
	case s.Command != "" && s.Task != "":
		return fmt.Errorf("a pull job runs a command or a task, not both")
	case len(s.Params) > 0 && s.Task == "":
		return fmt.Errorf("a pull job's \"params\" go with a \"task\"")
	case s.Command != "" && strings.TrimSpace(s.Command) == "":
		return fmt.Errorf("a pull job's \"command\" is blank: leave it out for the server's pull command")
	case s.RunAs != "" || len(s.Secrets) > 0 || s.Sealed != "":
		return fmt.Errorf("a pull job takes no run_as or secrets: the agent runs as its own user")
	case s.Concurrency != 0:
		return fmt.Errorf("concurrency applies to plan jobs only: each other job acts on one node per run")
	case s.LocalTargets:
		return fmt.Errorf("\"local_targets\" is set by the server, for admins on a server started with --allow-local-targets")
	}
	seen := map[int]bool{}
	for _, c := range s.SuccessCodes {
		if c < 0 || c > 255 || seen[c] {
			return fmt.Errorf("success_codes: %d is out of range (0 to 255) or repeated", c)
		}
		seen[c] = true
	}
	return nil
}

// Redacted returns a copy safe to show: no script body, secrets replaced
// by their names.
func (s JobSpec) Redacted() JobSpec {
	out := s
	out.ScriptBody = nil
	out.Sealed = ""
	if len(s.Secrets) > 0 || s.Sealed != "" {
		out.Secrets = map[string]string{}
		for k := range s.Secrets {
			out.Secrets[k] = "Sensitive [value redacted]"
		}
		if s.Sealed != "" && len(s.Secrets) == 0 {
			out.Secrets["sealed"] = "Sensitive [value redacted]"
		}
	}
	return out
}
