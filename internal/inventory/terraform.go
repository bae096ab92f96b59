package inventory

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// terraform: targets from a local Terraform state file. Resources whose
// address (type.name, with .index_key for counted ones) matches the
// resource_type regular expression become targets; target_mapping says
// which resource attributes (dotted paths) give the target's uri, name,
// alias and config, vars, facts.
func terraformPlugin(rs *resolver, _ *ref, params map[string]any, _ string) (any, error) {
	if err := onlyParams(params, "dir", "resource_type", "state", "statefile", "backend", "target_mapping"); err != nil {
		return nil, err
	}
	dir, err := strParam(params, "dir", true)
	if err != nil {
		return nil, err
	}
	rt, err := strParam(params, "resource_type", true)
	if err != nil {
		return nil, err
	}
	re, err := regexp.Compile(rt)
	if err != nil {
		return nil, fmt.Errorf("resource_type %q is not a valid regular expression: %v", rt, err)
	}
	backend, err := strParam(params, "backend", false)
	if err != nil {
		return nil, err
	}
	if backend != "" && backend != "local" {
		return nil, fmt.Errorf("backend %q is not supported: only local state files are read (run `terraform state pull > terraform.tfstate` and use backend: local)", backend)
	}
	state, err := strParam(params, "state", false)
	if err != nil {
		return nil, err
	}
	if state == "" {
		if state, err = strParam(params, "statefile", false); err != nil {
			return nil, err
		}
	}
	if state == "" {
		state = "terraform.tfstate"
	}
	mapping, ok := params["target_mapping"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("parameter \"target_mapping\" is required: a mapping with uri or name (and optionally alias, config, vars, facts), not %s", kindOf(params["target_mapping"]))
	}
	if err := onlyParams(mapping, "uri", "name", "alias", "config", "vars", "facts", "features"); err != nil {
		return nil, fmt.Errorf("target_mapping: %v", err)
	}
	if mapping["uri"] == nil && mapping["name"] == nil {
		return nil, fmt.Errorf("target_mapping must set uri or name")
	}
	path := filepath.Join(rs.path(dir), state)
	if filepath.IsAbs(state) {
		path = state
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read Terraform state file %s: %v", path, errors.Unwrap(err))
	}
	resources, err := tfResources(b)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %v", path, err)
	}
	var out []any
	for _, r := range resources {
		if !re.MatchString(r.name) {
			continue
		}
		t := map[string]any{}
		for _, k := range []string{"uri", "name"} {
			if p, ok := mapping[k]; ok {
				ps, ok := p.(string)
				if !ok {
					return nil, fmt.Errorf("target_mapping.%s must be an attribute path (a string), not %s", k, kindOf(p))
				}
				if v := rs.tfLookup(r, ps); v != nil {
					t[k] = fmt.Sprint(v)
				}
			}
		}
		if t["uri"] == nil && t["name"] == nil {
			continue
		}
		for _, k := range []string{"alias", "config", "vars", "facts", "features"} {
			if tmpl, ok := mapping[k]; ok {
				t[k] = rs.tfWalk(r, tmpl)
			}
		}
		out = append(out, t)
	}
	if out == nil {
		out = []any{}
	}
	return out, nil
}

type tfResource struct {
	name  string
	attrs map[string]any
}

// tfResources lists a state file's resource instances (state version 4,
// and the flat attributes of versions 3 and earlier) in file order.
func tfResources(b []byte) ([]tfResource, error) {
	var st struct {
		Version   int `json:"version"`
		Resources []struct {
			Mode      string `json:"mode"`
			Type      string `json:"type"`
			Name      string `json:"name"`
			Instances []struct {
				IndexKey   any            `json:"index_key"`
				Attributes map[string]any `json:"attributes"`
			} `json:"instances"`
		} `json:"resources"`
		Modules []struct {
			Resources map[string]struct {
				Primary struct {
					Attributes map[string]any `json:"attributes"`
				} `json:"primary"`
			} `json:"resources"`
		} `json:"modules"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("invalid JSON: %v", err)
	}
	var out []tfResource
	if st.Version >= 4 {
		for _, rs := range st.Resources {
			prefix := rs.Type + "." + rs.Name
			if rs.Mode == "data" {
				prefix = "data." + prefix
			}
			for _, in := range rs.Instances {
				name := prefix
				if in.IndexKey != nil {
					name += "." + fmt.Sprint(normalizeJSON(in.IndexKey))
				}
				out = append(out, tfResource{name, normalizeJSON(in.Attributes).(map[string]any)})
			}
		}
		return out, nil
	}
	if st.Version == 0 {
		return nil, fmt.Errorf("no state version: not a Terraform state file")
	}
	for _, m := range st.Modules {
		for _, name := range sortedKeys(anyMap(m.Resources)) {
			out = append(out, tfResource{name, m.Resources[name].Primary.Attributes})
		}
	}
	return out, nil
}

func anyMap[V any](m map[string]V) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// tfLookup finds an attribute by dotted path ("network.0.ip"), or by the
// flat key of older state files; a missing one warns and is nil.
func (rs *resolver) tfLookup(r tfResource, path string) any {
	if v, ok := r.attrs[path]; ok && v != nil {
		return v
	}
	var cur any = r.attrs
	for _, seg := range strings.Split(path, ".") {
		switch x := cur.(type) {
		case map[string]any:
			cur = x[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				cur = nil
			} else {
				cur = x[i]
			}
		default:
			cur = nil
		}
	}
	if cur == nil && rs.opts.Warnf != nil {
		rs.opts.Warnf("terraform plugin: resource %s has no attribute %q", r.name, path)
	}
	return cur
}

// tfWalk replaces every string of a mapping template with the attribute
// it names.
func (rs *resolver) tfWalk(r tfResource, tmpl any) any {
	switch x := tmpl.(type) {
	case string:
		return rs.tfLookup(r, x)
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, v := range x {
			out[k] = rs.tfWalk(r, v)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, v := range x {
			out[i] = rs.tfWalk(r, v)
		}
		return out
	}
	return tmpl
}
