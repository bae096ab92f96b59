package inventory

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/puppet"
)

// mdata is target or group data on its way through Bolt's data_merge.
type mdata struct {
	name, uri string
	aliases   []string
	config    map[string]any
	facts     map[string]any
	vars      map[string]any
	features  []string
	groups    []string
}

// dataMerge is Bolt's Group#data_merge: d2 wins over d1, except for name and
// uri where d1 wins; aliases, features and groups are collected.
func dataMerge(d1, d2 *mdata) *mdata {
	if d1 == nil {
		return d2
	}
	if d2 == nil {
		return d1
	}
	out := &mdata{
		name:     first(d1.name, d2.name),
		uri:      first(d1.uri, d2.uri),
		aliases:  append(append([]string(nil), d1.aliases...), d2.aliases...),
		config:   deepMerge(d1.config, d2.config),
		facts:    deepMerge(d1.facts, d2.facts),
		vars:     shallowMerge(d1.vars, d2.vars),
		features: union(d1.features, d2.features),
		groups:   append(append([]string(nil), d2.groups...), d1.groups...),
	}
	return out
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// deepMerge returns a fresh map: b over a, merging nested maps.
func deepMerge(a, b map[string]any) map[string]any {
	out := cloneMap(a)
	for k, v := range b {
		am, aok := out[k].(map[string]any)
		bm, bok := v.(map[string]any)
		if aok && bok {
			out[k] = deepMerge(am, bm)
		} else {
			out[k] = puppet.DeepCopy(v)
		}
	}
	return out
}

// shallowMerge returns a fresh map: b's top-level keys replace a's.
func shallowMerge(a, b map[string]any) map[string]any {
	out := cloneMap(a)
	for k, v := range b {
		out[k] = puppet.DeepCopy(v)
	}
	return out
}

func union(a, b []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// cloneMap deep-copies a hash of data, making nil an empty hash.
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return puppet.DeepCopy(m).(map[string]any)
}

// CloneTarget returns a deep copy of t.
func CloneTarget(t *muster.Target) *muster.Target {
	c := *t
	c.Alias = append([]string(nil), t.Alias...)
	c.Config = cloneMap(t.Config)
	c.Vars = cloneMap(t.Vars)
	c.Facts = cloneMap(t.Facts)
	c.Features = append([]string{}, t.Features...)
	c.Groups = append([]string(nil), t.Groups...)
	return &c
}

// groupNode is a group after string targets are resolved.
type groupNode struct {
	def    *groupDef
	local  map[string]*entry // target key -> its (first) definition in this group
	groups []*groupNode
}

// dataFunc returns a data block with its plugin references resolved.
type dataFunc func(*data) (*data, error)

func (g *groupNode) own(rd dataFunc) (*mdata, error) {
	d, err := rd(&g.def.data)
	if err != nil {
		return nil, err
	}
	return &mdata{
		config: cloneMap(d.config), facts: cloneMap(d.facts), vars: cloneMap(d.vars),
		features: append([]string(nil), d.features...), groups: []string{g.def.name},
	}, nil
}

// targetData is the group's own definition of key (Bolt keeps the first
// definition of a target in one group).
func (g *groupNode) targetData(key string, rd dataFunc) (*mdata, error) {
	e := g.local[key]
	if e == nil {
		return nil, nil
	}
	d, err := rd(&e.data)
	if err != nil {
		return nil, err
	}
	out := &mdata{
		name: e.name, uri: e.uri,
		config: cloneMap(d.config), facts: cloneMap(d.facts), vars: cloneMap(d.vars),
		features: append([]string(nil), d.features...),
	}
	for _, a := range e.aliases {
		out.aliases = append(out.aliases, a.name)
	}
	return out, nil
}

// targetCollect is Bolt's Group#target_collect: target-level data from every
// definition; children override the parent, earlier siblings win.
func (g *groupNode) targetCollect(key string, rd dataFunc) (*mdata, error) {
	var child *mdata
	for _, c := range g.groups {
		cd, err := c.targetCollect(key, rd)
		if err != nil {
			return nil, err
		}
		child = dataMerge(cd, child)
	}
	own, err := g.targetData(key, rd)
	if err != nil {
		return nil, err
	}
	return dataMerge(own, child), nil
}

// groupCollect is Bolt's Group#group_collect: group-level data of every
// group containing key; same winner rule. Nil when no group contains key.
// Only the groups that contain key have their data resolved.
func (g *groupNode) groupCollect(key string, rd dataFunc) (*mdata, error) {
	var child *mdata
	for _, c := range g.groups {
		cd, err := c.groupCollect(key, rd)
		if err != nil {
			return nil, err
		}
		child = dataMerge(cd, child)
	}
	if child == nil && g.local[key] == nil {
		return nil, nil
	}
	own, err := g.own(rd)
	if err != nil {
		return nil, err
	}
	return dataMerge(own, child), nil
}

// members appends the keys of every target in g and its subgroups to set.
func (g *groupNode) members(set map[string]bool) {
	for k := range g.local {
		set[k] = true
	}
	for _, c := range g.groups {
		c.members(set)
	}
}

// build turns merged data into a muster.Target, applying the Bolt rules:
// Defaults → localhost defaults → groups → target → URI components. For an
// ad-hoc "localhost" (not defined in the inventory) the local transport
// sits above the group data instead: it always runs locally.
func (inv *Inventory) build(td, gd *mdata, adhoc bool) (*muster.Target, [][]string, error) {
	if gd == nil {
		gd = &mdata{}
	}
	name := td.name
	var u *URI
	if td.uri != "" {
		var err error
		if u, err = ParseURI(td.uri); err != nil {
			return nil, nil, fmt.Errorf("target %q: %v", Redact(td.uri), err)
		}
		if name == "" {
			name = u.Safe
		}
	}
	if why := badName(name); why != "" {
		return nil, nil, fmt.Errorf("invalid target name %q: %s", Redact(name), why)
	}
	features := gd.features
	groupConfig := gd.config
	if name == "localhost" {
		local := map[string]any{"transport": "local"}
		if adhoc {
			groupConfig = deepMerge(groupConfig, local)
		} else {
			groupConfig = deepMerge(local, groupConfig)
		}
		features = union(features, []string{"puppet-agent"})
	}
	config := deepMerge(inv.opts.Defaults, deepMerge(groupConfig, td.config))
	vars := shallowMerge(gd.vars, td.vars)
	facts := deepMerge(gd.facts, td.facts)
	var secret [][]string
	takeSensitive(config, []string{"config"}, &secret)
	takeSensitive(vars, []string{"vars"}, &secret)
	takeSensitive(facts, []string{"facts"}, &secret)
	t := &muster.Target{
		Name:     name,
		Alias:    union(nil, td.aliases),
		Config:   config,
		Vars:     vars,
		Facts:    facts,
		Features: union(features, td.features),
		Groups:   append([]string(nil), gd.groups...),
	}
	if u != nil {
		t.URI = u.Safe
		t.Transport = u.Scheme
	}
	if t.Transport == "" {
		switch tr := config["transport"].(type) {
		case nil:
			t.Transport = "ssh"
		case string:
			t.Transport = tr
		default:
			return nil, nil, fmt.Errorf("target %q: config.transport must be a string", name)
		}
	}
	if !transports[t.Transport] {
		return nil, nil, fmt.Errorf("target %q: unknown transport %q", name, t.Transport)
	}
	sect, _ := config[t.Transport].(map[string]any)
	if u != nil && (u.User != "" || u.HasPassword || u.Port != 0) {
		if sect == nil {
			sect = map[string]any{}
		}
		if u.User != "" {
			sect["user"] = u.User
		}
		if u.HasPassword {
			sect["password"] = u.Password
		}
		if u.Port != 0 {
			sect["port"] = u.Port
		}
		config[t.Transport] = sect
	}
	if s, ok := sect["host"].(string); ok {
		t.Host = s
	}
	if u != nil && u.Host != "" {
		t.Host = u.Host
	} else if t.Host == "" && u == nil {
		t.Host = name
	}
	if s, ok := sect["user"].(string); ok {
		t.User = s
	}
	if p, ok := sect["port"]; ok && p != nil {
		port, ok := toPort(p)
		if !ok {
			return nil, nil, fmt.Errorf("target %q: config.%s.port must be an integer from 1 to 65535", name, t.Transport)
		}
		t.Port = port
	}
	if t.Transport == "ssh" || t.Transport == "local" {
		t.Features = union(t.Features, []string{"shell"})
	}
	sort.Strings(t.Features)
	if t.Features == nil {
		t.Features = []string{}
	}
	sortPaths(secret)
	return t, secret, nil
}

func sortPaths(ps [][]string) {
	sort.Slice(ps, func(i, j int) bool {
		return strings.Join(ps[i], "\x00") < strings.Join(ps[j], "\x00")
	})
}

func toPort(v any) (int, bool) {
	var n int64
	switch x := v.(type) {
	case int:
		n = int64(x)
	case int64:
		n = x
	case int32:
		n = int64(x)
	case uint64:
		if x > math.MaxInt32 {
			return 0, false
		}
		n = int64(x)
	case float64:
		if x != math.Trunc(x) || x > 65535 {
			return 0, false
		}
		n = int64(x)
	case string:
		i, err := strconv.Atoi(x)
		if err != nil {
			return 0, false
		}
		n = int64(i)
	default:
		return 0, false
	}
	if n < 1 || n > 65535 {
		return 0, false
	}
	return int(n), true
}
