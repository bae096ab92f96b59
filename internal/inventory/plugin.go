package inventory

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/puppet"
	"github.com/muster-run/muster/internal/yamlnode"
)

// A plugin reference, {_plugin: NAME, ...params}, is resolved as Bolt does
// it. References that shape the inventory (a targets or groups list, one
// entry of one, a group's name, a target's name, uri or alias) resolve when
// the inventory loads, since every lookup needs the whole structure. The
// rest (config, facts, vars, features and anything nested in them)
// resolves lazily: the first time a target that uses it is looked up, so a
// plugin in the data of a group no requested target belongs to never
// runs. Each distinct reference runs once per Inventory.

// ref is a plugin reference as parsed; params may hold nested refs, which
// resolve before the plugin runs.
type ref struct {
	plugin string
	params map[string]any
	line   int
}

// sensitive wraps a value a secret-bearing plugin (pkcs7, prompt) returned,
// until a target is built and the value's place is recorded for redaction.
type sensitive struct{ v any }

type pluginFunc func(rs *resolver, r *ref, params map[string]any, where string) (any, error)

type pluginDef struct {
	run    pluginFunc
	secret bool // its values are secrets: redacted wherever shown
}

// plugins are the supported plugins (set in init: the yaml plugin parses
// references itself).
var plugins map[string]pluginDef

func init() {
	plugins = map[string]pluginDef{
		"env_var":   {envVarPlugin, false},
		"prompt":    {promptPlugin, true},
		"yaml":      {yamlPlugin, false},
		"pkcs7":     {pkcs7Plugin, true},
		"task":      {taskPlugin, false},
		"terraform": {terraformPlugin, false},
		"puppetdb":  {puppetdbPlugin, false},
	}
}

// SupportedPlugins lists the plugin names an inventory may use.
func SupportedPlugins() []string {
	out := make([]string, 0, len(plugins))
	for k := range plugins {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// maxPluginDepth bounds references returning references (a yaml file
// that includes itself).
const maxPluginDepth = 16

// isRef reports whether n is a mapping with a _plugin key.
func isRef(n *yaml.Node) bool {
	n = yamlnode.Deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := yamlnode.Deref(n.Content[i]); k != nil && k.Kind == yaml.ScalarNode && k.Value == "_plugin" {
			return true
		}
	}
	return false
}

// ref parses a plugin reference node.
func (p *parser) ref(n *yaml.Node, depth int) (*ref, error) {
	m, err := p.mapValue(n, depth)
	if err != nil {
		return nil, err
	}
	line := n.Line
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := yamlnode.Deref(n.Content[i]); k != nil && k.Value == "_plugin" {
			line = k.Line
		}
	}
	r, err := newRef(m, line)
	if err != nil {
		return nil, p.errf(line, "%v", err)
	}
	p.refs++
	return r, nil
}

// newRef makes a ref from a mapping holding _plugin (nested references in
// its values stay plain maps until resolution finds them).
func newRef(m map[string]any, line int) (*ref, error) {
	name, ok := m["_plugin"].(string)
	if !ok {
		return nil, fmt.Errorf("_plugin must be a plugin name (a string), not %s", kindOf(m["_plugin"]))
	}
	if _, ok := plugins[name]; !ok {
		return nil, fmt.Errorf("unknown plugin %q; supported plugins: %s", name, strings.Join(SupportedPlugins(), ", "))
	}
	params := map[string]any{}
	for k, v := range m {
		switch k {
		case "_plugin", "_cache": // every reference runs once per run anyway
		default:
			params[k] = v
		}
	}
	return &ref{plugin: name, params: params, line: line}, nil
}

// resolver runs plugins for one Inventory and remembers their results.
type resolver struct {
	file  string
	dir   string
	opts  Options
	mu    sync.Mutex
	cache map[string]cached
	// state of plugins that load things once
	pkcs7Once sync.Once
	pkcs7     *pkcs7State
	pdbOnce   sync.Once
	pdb       *pdbClient
	pdbErr    error
}

type cached struct {
	v   any
	err error
}

func newResolver(file string, opts Options) *resolver {
	dir := opts.ProjectDir
	if dir == "" && file != "" {
		dir = filepath.Dir(file)
	}
	if dir == "" {
		dir = "."
	}
	return &resolver{file: file, dir: dir, opts: opts, cache: map[string]cached{}}
}

// PluginError is a plugin's failure at a place of the inventory.
type PluginError struct {
	File   string
	Line   int
	Plugin string
	Where  string // what the reference sets: `target "web1": config.ssh.password`
	Err    error
}

func (e *PluginError) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d", e.File, e.Line)
	}
	if loc != "" {
		loc += ": "
	}
	where := ""
	if e.Where != "" {
		where = " (" + e.Where + ")"
	}
	return fmt.Sprintf("%splugin %q%s: %v", loc, e.Plugin, where, e.Err)
}

// Unwrap gives the location (an *Error, for the file and line in error
// details) and the plugin's own error.
func (e *PluginError) Unwrap() []error {
	return []error{&Error{File: e.File, Line: e.Line, Msg: fmt.Sprintf("plugin %q: %v", e.Plugin, e.Err)}, e.Err}
}

// value resolves every reference inside v; where names v's place.
func (rs *resolver) value(v any, where string, depth int) (any, error) {
	switch x := v.(type) {
	case *ref:
		return rs.resolve(x, where, depth)
	case map[string]any:
		if _, ok := x["_plugin"]; ok {
			// a reference inside data a plugin returned
			r, err := newRef(x, 0)
			if err != nil {
				return nil, err
			}
			return rs.resolve(r, where, depth)
		}
		out := make(map[string]any, len(x))
		for _, k := range sortedKeys(x) {
			r, err := rs.value(x[k], joinWhere(where, k), depth)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := rs.value(e, fmt.Sprintf("%s[%d]", where, i), depth)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

func joinWhere(where, k string) string {
	if where == "" || strings.HasSuffix(where, ": ") {
		return where + k
	}
	return where + "." + k
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// resolve runs one reference (once per distinct plugin and parameters)
// and resolves whatever references its result holds.
func (rs *resolver) resolve(r *ref, where string, depth int) (any, error) {
	fail := func(err error) error {
		var pe *PluginError
		if errors.As(err, &pe) {
			return err
		}
		return &PluginError{File: rs.file, Line: r.line, Plugin: r.plugin, Where: strings.TrimSuffix(where, ": "), Err: err}
	}
	if depth >= maxPluginDepth {
		return nil, fail(fmt.Errorf("plugin references nest more than %d deep (does a file include itself?)", maxPluginDepth))
	}
	pv, err := rs.value(r.params, where, depth+1)
	if err != nil {
		return nil, err
	}
	params := unwrap(pv).(map[string]any)
	key := r.plugin + "\x00" + puppet.CompactJSON(params)
	rs.mu.Lock()
	c, ok := rs.cache[key]
	rs.mu.Unlock()
	if !ok {
		c.v, c.err = plugins[r.plugin].run(rs, r, params, strings.TrimSuffix(where, ": "))
		if c.err == nil {
			c.v, c.err = rs.value(c.v, where, depth+1)
		}
		rs.mu.Lock()
		rs.cache[key] = c
		rs.mu.Unlock()
	}
	if c.err != nil {
		return nil, fail(c.err)
	}
	v := puppet.DeepCopy(c.v)
	if plugins[r.plugin].secret {
		v = sensitive{unwrap(v)}
	}
	return v, nil
}

// unwrap returns v without sensitive markers.
func unwrap(v any) any {
	switch x := v.(type) {
	case sensitive:
		return unwrap(x.v)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = unwrap(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = unwrap(e)
		}
		return out
	}
	return v
}

// takeSensitive removes the sensitive markers of m in place and appends
// the path of every value that had one to paths.
func takeSensitive(m map[string]any, prefix []string, paths *[][]string) {
	for k, v := range m {
		p := append(append([]string(nil), prefix...), k)
		switch x := v.(type) {
		case sensitive:
			m[k] = unwrap(x.v)
			*paths = append(*paths, p)
		case map[string]any:
			takeSensitive(x, p, paths)
		case []any:
			for i, e := range x {
				if s, ok := e.(sensitive); ok {
					x[i] = unwrap(s.v)
					*paths = append(*paths, p)
				} else {
					x[i] = unwrap(e)
				}
			}
		}
	}
}

// context is the context plugins run under.
func (rs *resolver) context() context.Context { return context.Background() }

// param helpers, shared by the plugins

func strParam(params map[string]any, name string, required bool) (string, error) {
	v, ok := params[name]
	if !ok || v == nil {
		if required {
			return "", fmt.Errorf("parameter %q is required", name)
		}
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("parameter %q must be a string, not %s", name, kindOf(v))
	}
	if required && s == "" {
		return "", fmt.Errorf("parameter %q must not be empty", name)
	}
	return s, nil
}

func boolParam(params map[string]any, name string) (bool, error) {
	v, ok := params[name]
	if !ok || v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("parameter %q must be a boolean, not %s", name, kindOf(v))
	}
	return b, nil
}

// onlyParams rejects parameters the plugin does not know.
func onlyParams(params map[string]any, known ...string) error {
	var bad []string
	for k := range params {
		ok := false
		for _, n := range known {
			ok = ok || k == n
		}
		if !ok {
			bad = append(bad, k)
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("unknown parameter(s) %s (known: %s)", strings.Join(bad, ", "), strings.Join(known, ", "))
	}
	return nil
}

// path makes p absolute against the project directory.
func (rs *resolver) path(p string) string {
	if strings.HasPrefix(p, "~/") {
		if home, err := userHome(); err == nil {
			return filepath.Join(home, p[2:])
		}
	}
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(rs.dir, p)
}
