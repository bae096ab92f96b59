package inventory

import (
	"reflect"
	"testing"

	"github.com/muster-run/muster"
)

// TestKnownHostsConfig checks the shape of config.ssh.known-hosts: one
// file path or a list of them, with the file and line of a bad value.
func TestKnownHostsConfig(t *testing.T) {
	tests := []struct {
		name, src string
		want      string // "" for valid
		wantValue any
	}{
		{"path", "config:\n  ssh:\n    known-hosts: /etc/muster/known_hosts\ntargets: [a.example]\n", "", "/etc/muster/known_hosts"},
		{"list", "config:\n  ssh:\n    known-hosts: [/a, ~/b]\ntargets: [a.example]\n", "", []any{"/a", "~/b"}},
		{"group level", "groups:\n  - name: g\n    targets: [a.example]\n    config:\n      ssh:\n        known-hosts: /k\n", "", "/k"},
		{"number", "config:\n  ssh:\n    known-hosts: 3\n", `inventory.yaml:3: config.ssh.known-hosts must be a file path or a list of file paths`, nil},
		{"empty", "config:\n  ssh:\n    known-hosts: ''\n", `inventory.yaml:3: config.ssh.known-hosts must be a file path or a list of file paths`, nil},
		{"mapping", "config:\n  ssh:\n    known-hosts: {a: b}\n", `inventory.yaml:3: config.ssh.known-hosts must be a file path or a list of file paths`, nil},
		{"bad list item", "config:\n  ssh:\n    known-hosts:\n      - /a\n      - [b]\n", `inventory.yaml:5: config.ssh.known-hosts must be a file path or a list of file paths`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			inv, err := Parse("inventory.yaml", []byte(tc.src), Options{})
			if tc.want != "" {
				if err == nil || err.Error() != tc.want {
					t.Fatalf("error\n got: %v\nwant: %s", err, tc.want)
				}
				if muster.KindOf(err) != muster.KindInvalid {
					t.Errorf("kind = %q", muster.KindOf(err))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tg := mustTarget(t, inv, "a.example")
			got := tg.TransportConfig()["known-hosts"]
			if !reflect.DeepEqual(got, tc.wantValue) {
				t.Errorf("known-hosts = %#v, want %#v", got, tc.wantValue)
			}
		})
	}
}
