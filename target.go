package muster

import "sort"

// Target is one resolved host with its fully merged inventory data.
type Target struct {
	// Name is what output, logs and download directories show. It never
	// contains a password.
	Name string `json:"name"`
	// URI is the target's address as written (password removed).
	URI string `json:"uri,omitempty"`
	// Alias lists the target's aliases.
	Alias []string `json:"alias,omitempty"`
	// Transport names the transport that reaches the target: "ssh" or "local".
	Transport string `json:"-"`
	// Host, Port and User are the connection endpoint after every merge rule
	// (URI over inventory config over CLI defaults). Port 0 means the
	// transport's default.
	Host string `json:"-"`
	Port int    `json:"-"`
	User string `json:"-"`
	// Config is the merged config block: {"transport": ..., "ssh": {...}, "local": {...}}.
	Config   map[string]any `json:"config"`
	Vars     map[string]any `json:"vars"`
	Facts    map[string]any `json:"facts"`
	Features []string       `json:"features"`
	Groups   []string       `json:"groups"`
}

// TransportConfig returns the config section for the target's transport
// (for example Config["ssh"]), or an empty map.
func (t *Target) TransportConfig() map[string]any {
	if m, ok := t.Config[t.Transport].(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// HasFeature reports whether the target has feature f.
func (t *Target) HasFeature(f string) bool {
	for _, x := range t.Features {
		if x == f {
			return true
		}
	}
	return false
}

// SortedFeatures returns a sorted copy of the target's features.
func (t *Target) SortedFeatures() []string {
	out := append([]string(nil), t.Features...)
	sort.Strings(out)
	return out
}

// Names returns the targets' names, in order.
func Names(ts []*Target) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.Name
	}
	return out
}
