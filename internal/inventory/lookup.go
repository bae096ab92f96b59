package inventory

import (
	"errors"
	"fmt"

	"github.com/muster-run/muster"
)

// dataOf returns d with its plugin references resolved, once per
// Inventory. With run false it returns errDeferred rather than run a
// plugin. The caller holds inv.mu.
func (inv *Inventory) dataOf(d *data, run bool) (*data, error) {
	if d.raw == nil {
		return d, nil
	}
	if r, ok := inv.resolved[d]; ok {
		return r, nil
	}
	if !run {
		return nil, errDeferred
	}
	out := *d
	out.raw = nil
	for _, k := range []string{"config", "facts", "vars", "features"} {
		rv, ok := d.raw[k]
		if !ok {
			continue
		}
		v, err := inv.res.value(rv.v, d.owner+k, 0)
		if err != nil {
			return nil, err
		}
		bad := func(what string) error {
			return &Error{File: inv.file, Line: rv.line, Msg: fmt.Sprintf("%s%s: a plugin returned %s, not %s", d.owner, k, kindOf(unwrap(v)), what)}
		}
		if k == "features" {
			fs, ok := featureStrings(v)
			if !ok {
				return nil, bad("a list of strings")
			}
			out.features = fs
			continue
		}
		var m map[string]any
		switch x := v.(type) {
		case nil:
			m = map[string]any{}
		case map[string]any:
			m = x
		case sensitive:
			mm, ok := x.v.(map[string]any)
			if !ok {
				return nil, bad("a mapping")
			}
			m = map[string]any{}
			for key, e := range mm {
				m[key] = sensitive{e}
			}
		default:
			return nil, bad("a mapping")
		}
		switch k {
		case "config":
			out.config = m
		case "facts":
			out.facts = m
		case "vars":
			out.vars = m
		}
	}
	inv.resolved[d] = &out
	return &out, nil
}

// featureStrings flattens resolved features (a reference may return a
// list) into strings.
func featureStrings(v any) ([]string, bool) {
	switch x := unwrap(v).(type) {
	case nil:
		return nil, true
	case string:
		return []string{x}, true
	case []any:
		var out []string
		for _, e := range x {
			fs, ok := featureStrings(e)
			if !ok {
				return nil, false
			}
			out = append(out, fs...)
		}
		return out, true
	}
	return nil, false
}

// target builds (once) the inventory target key, resolving the plugin
// references of the data it uses when run is set. The caller holds
// inv.mu, or is resolve.
func (inv *Inventory) target(key string, run bool) (*muster.Target, error) {
	if t, ok := inv.targets[key]; ok {
		return t, nil
	}
	rd := func(d *data) (*data, error) { return inv.dataOf(d, run) }
	td, err := inv.root.targetCollect(key, rd)
	if err == nil {
		var gd *mdata
		if gd, err = inv.root.groupCollect(key, rd); err == nil {
			var t *muster.Target
			var secret [][]string
			if t, secret, err = inv.build(td, gd, false); err == nil {
				inv.targets[key] = t
				inv.secret[key] = secret
				return t, nil
			}
			err = &Error{File: inv.file, Line: inv.firstAt[key].line, Msg: err.Error()}
		}
	}
	if errors.Is(err, errDeferred) {
		return nil, err
	}
	return nil, invalid(err)
}

// targetsOf builds the named targets and returns copies.
func (inv *Inventory) targetsOf(keys []string) ([]*muster.Target, error) {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	out := make([]*muster.Target, 0, len(keys))
	for _, k := range keys {
		t, err := inv.target(k, true)
		if err != nil {
			return nil, err
		}
		out = append(out, CloneTarget(t))
	}
	return out, nil
}

// File returns the path the inventory was loaded from ("" for Empty).
func (inv *Inventory) File() string { return inv.file }

// All returns every inventory target in order of first appearance in the
// file (by line and column), resolving every plugin reference they use.
func (inv *Inventory) All() ([]*muster.Target, error) { return inv.targetsOf(inv.order) }

// GroupTargets returns the targets of a group and all its subgroups, in
// file order ("all" is every target), resolving the plugin references
// their data uses. The bool is false for an unknown group.
func (inv *Inventory) GroupTargets(name string) ([]*muster.Target, bool, error) {
	names, ok := inv.groups[name]
	if !ok {
		return nil, false, nil
	}
	ts, err := inv.targetsOf(names)
	return ts, true, err
}

// Lookup resolves a name as Bolt does: a group (its targets), else a
// target name, else an alias. The bool is false when nothing has the
// name. Errors are plugin errors (*PluginError inside) and target errors,
// located in the inventory file.
func (inv *Inventory) Lookup(name string) ([]*muster.Target, bool, error) {
	if names, ok := inv.groups[name]; ok {
		ts, err := inv.targetsOf(names)
		return ts, true, err
	}
	key := name
	if _, ok := inv.firstAt[key]; !ok {
		if key, ok = inv.aliases[name]; !ok {
			return nil, false, nil
		}
	}
	ts, err := inv.targetsOf([]string{key})
	return ts, true, err
}

// Targets is All for callers that cannot report errors: a target whose
// plugin references fail is left out, with a warning (Options.Warnf).
func (inv *Inventory) Targets() []*muster.Target {
	var out []*muster.Target
	for _, k := range inv.order {
		ts, err := inv.targetsOf([]string{k})
		if inv.warnErr(err) {
			continue
		}
		out = append(out, ts...)
	}
	return out
}

// warnErr reports err as a warning and whether there was one.
func (inv *Inventory) warnErr(err error) bool {
	if err != nil && inv.opts.Warnf != nil {
		inv.opts.Warnf("%v", err)
	}
	return err != nil
}

// Group is GroupTargets for callers that cannot report errors: when a
// plugin reference fails, the error is a warning and the bool is false.
func (inv *Inventory) Group(name string) ([]*muster.Target, bool) {
	ts, ok, err := inv.GroupTargets(name)
	if inv.warnErr(err) {
		return nil, false
	}
	return ts, ok
}

// GroupMembers returns the names of a group's targets (all its
// subgroups' too), in file order, without resolving any plugin.
func (inv *Inventory) GroupMembers(name string) ([]string, bool) {
	names, ok := inv.groups[name]
	return append([]string(nil), names...), ok
}

// TargetNames returns every target name in file order, without resolving
// any plugin.
func (inv *Inventory) TargetNames() []string { return append([]string(nil), inv.order...) }

// Len is the number of inventory targets.
func (inv *Inventory) Len() int { return len(inv.order) }

// GroupNames returns every group name, "all" first, then depth-first in
// file order.
func (inv *Inventory) GroupNames() []string {
	return append([]string(nil), inv.gorder...)
}

// IsEmpty reports whether the inventory defines no target and no group
// besides "all".
func (inv *Inventory) IsEmpty() bool { return len(inv.order) == 0 && len(inv.gorder) <= 1 }

// Names returns every group name (as GroupNames), then every target name
// and then every alias (both in target order), for "did you mean" hints.
func (inv *Inventory) Names() []string {
	out := append([]string(nil), inv.gorder...)
	out = append(out, inv.order...)
	for _, k := range inv.order {
		out = append(out, inv.aliasOf[k]...)
	}
	return out
}

// Target returns the inventory target with this exact name; a plugin
// failure is a warning and the bool is false (Lookup returns the error).
func (inv *Inventory) Target(name string) (*muster.Target, bool) {
	if _, ok := inv.firstAt[name]; !ok {
		return nil, false
	}
	ts, err := inv.targetsOf([]string{name})
	if inv.warnErr(err) {
		return nil, false
	}
	return ts[0], true
}

// Has reports whether name is an inventory target's name.
func (inv *Inventory) Has(name string) bool {
	_, ok := inv.firstAt[name]
	return ok
}

// ByAlias returns the inventory target with this exact alias, as Target.
func (inv *Inventory) ByAlias(alias string) (*muster.Target, bool) {
	k, ok := inv.aliases[alias]
	if !ok {
		return nil, false
	}
	return inv.Target(k)
}

// Sensitive returns the places in the target's config, vars and facts
// (paths such as ["config", "ssh", "password"]) whose values came from a
// secret-bearing plugin (pkcs7, prompt), for redaction. The target must
// have been looked up already.
func (inv *Inventory) Sensitive(name string) [][]string {
	inv.mu.Lock()
	defer inv.mu.Unlock()
	var out [][]string
	for _, p := range inv.secret[name] {
		out = append(out, append([]string(nil), p...))
	}
	return out
}

// Adhoc returns a new target that is not in the inventory, built from uri
// as Bolt does: it joins group "all" and gets that group's config, vars,
// facts and features, over Options.Defaults. A uri that is the name of an
// inventory target returns that target. An ad-hoc "localhost" always has
// the local transport, whatever transport the inventory's config sets.
func (inv *Inventory) Adhoc(uri string) (*muster.Target, error) {
	u, err := ParseURI(uri)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "invalid target %q: %v", Redact(uri), err)
	}
	if inv.Has(uri) && !u.HasPassword {
		ts, err := inv.targetsOf([]string{uri})
		if err != nil {
			return nil, err
		}
		return ts[0], nil
	}
	inv.mu.Lock()
	defer inv.mu.Unlock()
	gd, err := inv.root.own(func(d *data) (*data, error) { return inv.dataOf(d, true) })
	if err != nil {
		return nil, invalid(err)
	}
	t, secret, err := inv.build(&mdata{uri: uri}, gd, true)
	if err != nil {
		return nil, muster.Errorf(muster.KindInvalid, "%v", err)
	}
	inv.secret[t.Name] = secret
	return t, nil
}

// TargetsNamed returns the inventory targets with these names, in this
// order, resolving the plugin references their data uses.
func (inv *Inventory) TargetsNamed(names []string) ([]*muster.Target, error) {
	for _, n := range names {
		if !inv.Has(n) {
			return nil, muster.Errorf(muster.KindInvalid, "no inventory target named %q", n)
		}
	}
	return inv.targetsOf(names)
}

// AliasesOf returns the aliases of the target named name, without
// resolving any plugin.
func (inv *Inventory) AliasesOf(name string) []string {
	return append([]string(nil), inv.aliasOf[name]...)
}
