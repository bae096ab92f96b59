package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/term"
	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/boltsecret"
)

// kindOf names a value's kind for messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, uint64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "a mapping"
	case sensitive:
		return "a sensitive value"
	}
	return fmt.Sprintf("%T", v)
}

func userHome() (string, error) { return os.UserHomeDir() }

// env_var: the value of an environment variable (var), else default,
// else nothing when optional; json parses it as JSON.
func envVarPlugin(_ *resolver, _ *ref, params map[string]any, _ string) (any, error) {
	if err := onlyParams(params, "var", "default", "optional", "json"); err != nil {
		return nil, err
	}
	name, err := strParam(params, "var", true)
	if err != nil {
		return nil, err
	}
	optional, err := boolParam(params, "optional")
	if err != nil {
		return nil, err
	}
	asJSON, err := boolParam(params, "json")
	if err != nil {
		return nil, err
	}
	val, set := os.LookupEnv(name)
	if !set {
		if def, ok := params["default"]; ok {
			return def, nil
		}
		if optional {
			return nil, nil
		}
		return nil, fmt.Errorf("environment variable %q is not set (set it, or give the reference a default or optional: true)", name)
	}
	if asJSON {
		var v any
		if err := json.Unmarshal([]byte(val), &v); err != nil {
			return nil, fmt.Errorf("environment variable %q is not valid JSON: %v", name, err)
		}
		return normalizeJSON(v), nil
	}
	return val, nil
}

// normalizeJSON turns JSON numbers that are whole into ints, and the
// json.Numbers of a task's decoded result (engine.LocalTask's) into ints
// or float64s, so a number a plugin returns stays a number.
func normalizeJSON(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil && i >= -1<<53 && i <= 1<<53 {
			return int(i)
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case float64:
		if x == float64(int(x)) && x >= -1<<53 && x <= 1<<53 {
			return int(x)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeJSON(e)
		}
	case []any:
		for i, e := range x {
			x[i] = normalizeJSON(e)
		}
	}
	return v
}

// ErrNotInteractive is returned by the default prompt when standard input
// is not a terminal.
var ErrNotInteractive = errors.New("standard input is not a terminal")

// prompt: asks the user (once per message, never echoing the answer).
func promptPlugin(rs *resolver, _ *ref, params map[string]any, where string) (any, error) {
	if err := onlyParams(params, "message"); err != nil {
		return nil, err
	}
	msg, err := strParam(params, "message", true)
	if err != nil {
		return nil, err
	}
	ask := rs.opts.Prompt
	if ask == nil {
		ask = terminalPrompt
	}
	v, err := ask(msg)
	if err != nil {
		if errors.Is(err, ErrNotInteractive) {
			return nil, fmt.Errorf("cannot prompt for %s (%q): %v; in non-interactive use, set the value another way (for example with the env_var plugin)", where, msg, err)
		}
		return nil, fmt.Errorf("prompt for %s (%q): %v", where, msg, err)
	}
	return v, nil
}

// terminalPrompt asks on the terminal without echo.
func terminalPrompt(msg string) (string, error) {
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return "", ErrNotInteractive
	}
	fmt.Fprintf(os.Stderr, "%s: ", msg)
	b, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// yaml: the data of a YAML file (filepath, relative to the project).
func yamlPlugin(rs *resolver, _ *ref, params map[string]any, _ string) (any, error) {
	if err := onlyParams(params, "filepath"); err != nil {
		return nil, err
	}
	p, err := strParam(params, "filepath", true)
	if err != nil {
		return nil, err
	}
	path := rs.path(p)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read %s: %v", path, errors.Unwrap(err))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("%s: invalid YAML: %v", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	sub := &parser{file: path}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	v, err := sub.value(doc.Content[0], 0)
	if err != nil {
		return nil, err
	}
	return plainRefs(v), nil
}

// plainRefs turns the refs a sub-parser made back into {_plugin: ...}
// maps, so the resolver resolves them relative to the reference.
func plainRefs(v any) any {
	switch x := v.(type) {
	case *ref:
		m := map[string]any{"_plugin": x.plugin}
		for k, e := range x.params {
			m[k] = plainRefs(e)
		}
		return m
	case map[string]any:
		for k, e := range x {
			x[k] = plainRefs(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainRefs(e)
		}
	}
	return v
}

type pkcs7State struct {
	keys *boltsecret.Keys
	err  error
}

// pkcs7: decrypts encrypted_value with the project's key pair.
func pkcs7Plugin(rs *resolver, _ *ref, params map[string]any, _ string) (any, error) {
	if err := onlyParams(params, "encrypted_value"); err != nil {
		return nil, err
	}
	v, err := strParam(params, "encrypted_value", true)
	if err != nil {
		return nil, err
	}
	rs.pkcs7Once.Do(func() {
		st := &pkcs7State{}
		c, err := boltsecret.NewConfig(rs.dir, rs.opts.Plugins["pkcs7"])
		if err == nil {
			st.keys, err = boltsecret.LoadKeys(c, true)
		}
		st.err = err
		rs.pkcs7 = st
	})
	if rs.pkcs7.err != nil {
		return nil, rs.pkcs7.err
	}
	out, err := boltsecret.Decrypt(rs.pkcs7.keys.Cert, rs.pkcs7.keys.Key, v)
	if err != nil {
		return nil, err
	}
	return string(out), nil
}

// task: runs a task on localhost and returns its result's "value".
func taskPlugin(rs *resolver, _ *ref, params map[string]any, _ string) (any, error) {
	if err := onlyParams(params, "task", "parameters"); err != nil {
		return nil, err
	}
	name, err := strParam(params, "task", true)
	if err != nil {
		return nil, err
	}
	args := map[string]any{}
	if p, ok := params["parameters"]; ok && p != nil {
		m, ok := p.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("parameter \"parameters\" must be a mapping, not %s", kindOf(p))
		}
		args = m
	}
	if rs.opts.RunTask == nil {
		return nil, fmt.Errorf("cannot run task %q: tasks cannot run from the inventory here", name)
	}
	res, err := rs.opts.RunTask(rs.context(), name, args)
	if err != nil {
		return nil, fmt.Errorf("task %q: %v", name, err)
	}
	v, ok := res["value"]
	if !ok {
		keys := make([]string, 0, len(res))
		for k := range res {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return nil, fmt.Errorf("task %q did not return \"value\" (its result has keys: %s)", name, strings.Join(keys, ", "))
	}
	return normalizeJSON(v), nil
}
