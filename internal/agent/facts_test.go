package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
)

func TestOSFacts(t *testing.T) {
	tests := []struct {
		name, osRelease, debianVersion, want string
	}{
		{"debian point release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\n", "12.11\n",
			"Debian Debian 12.11 12 11 bookworm"},
		{"ubuntu", "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nVERSION_CODENAME=noble\n", "trixie/sid\n", "Ubuntu Debian 24.04 24 04 noble"},
		{"rocky", "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n", "", "Rocky RedHat 9.4 9 4 "},
		{"unknown, like rhel", "ID=acme\nID_LIKE=\"rhel fedora\"\nVERSION_ID=3\n", "", "Acme RedHat 3 3 <nil> "},
		{"comments and junk", "# hello\nnot a pair\nID=alpine\nVERSION_ID=3.20.1\n", "", "Alpine Alpine 3.20.1 3 20 "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := osFacts(parseOSRelease(tc.osRelease), tc.debianVersion)
			rel := f["release"].(map[string]any)
			got := fmt.Sprint(f["name"], " ", f["family"], " ", rel["full"], " ", rel["major"], " ", rel["minor"], " ",
				f["distro"].(map[string]any)["codename"])
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Gather on this machine: its own os-release, and a facts command merged
// over (and a failing one reported with the rest still sent).
func TestGather(t *testing.T) {
	facts, err := Gather(context.Background(), "me.test", `echo '{"role":"web","os":{"family":"Custom"}}'`)
	if err != nil {
		t.Fatal(err)
	}
	if facts["role"] != "web" || facts["os"].(map[string]any)["family"] != "Custom" {
		t.Errorf("the command's facts were not merged over: %v", facts)
	}
	native, err := Gather(context.Background(), "me.test", "")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		id := parseOSRelease(string(b))["ID"]
		if got := native["os"].(map[string]any)["distro"].(map[string]any)["id"]; got != id {
			t.Errorf("os.distro.id %v, want %q", got, id)
		}
	}
	if native["muster"].(map[string]any)["certname"] != "me.test" || native["kernel"] == "" {
		t.Errorf("native facts: %v", native)
	}
	for _, bad := range []string{"exit 3", "echo '[1]'", "echo nope"} {
		got, err := Gather(context.Background(), "me.test", bad)
		if err == nil || !strings.Contains(err.Error(), "facts command") || got["os"] == nil {
			t.Errorf("facts command %q: %v (facts %v)", bad, err, got != nil)
		}
	}
}
