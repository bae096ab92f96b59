package ssh_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// TestKnownHostsSetting checks the known-hosts setting against a real sshd:
// it names the only files trusted, in place of the defaults.
func TestKnownHostsSetting(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	with := func(extra map[string]any) map[string]any {
		cfg := map[string]any{"private-key": s.ClientKeyFile}
		for k, v := range extra {
			cfg[k] = v
		}
		return cfg
	}
	tests := []struct {
		name      string
		defaults  string // the Transport's default known_hosts file
		cfg       map[string]any
		override  map[string]any
		kind      string
		code      string
		fragments []string // nil: success
	}{
		{"setting trusts its file over empty defaults", empty, with(map[string]any{"known-hosts": s.KnownHostsFile}), nil, "", "", nil},
		{"setting replaces defaults that know the host", s.KnownHostsFile, with(map[string]any{"known-hosts": empty}), nil,
			muster.KindConnect, "HOST_KEY_ERROR", []string{"not in known_hosts (" + empty + ")", ">> " + empty, "--no-host-key-check"}},
		{"list of files", empty, with(map[string]any{"known-hosts": []any{empty, s.KnownHostsFile}}), nil, "", "", nil},
		{"missing file", s.KnownHostsFile, with(map[string]any{"known-hosts": missing}), nil,
			muster.KindInvalid, "INVALID_CONFIG", []string{"web1", `"known-hosts"`, missing}},
		{"not a path", s.KnownHostsFile, with(map[string]any{"known-hosts": 3}), nil,
			muster.KindInvalid, "INVALID_CONFIG", []string{`"known-hosts"`, "file path"}},
		{"ignored with the check off", s.KnownHostsFile, with(map[string]any{"known-hosts": missing, "host-key-check": false}), nil, "", "", nil},
		{"override wins over the target's setting", s.KnownHostsFile, with(map[string]any{"known-hosts": empty}),
			map[string]any{"known-hosts": s.KnownHostsFile}, "", "", nil},
		{"override turns the check off", empty, nil, map[string]any{"host-key-check": false}, "", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := ssh.New(ssh.Options{KnownHostsFiles: []string{tc.defaults}, SSHConfigFile: "none", Override: tc.override})
			defer tr.Close()
			r := run(t, tr, target(s, tc.cfg), "echo ok")
			if tc.fragments == nil {
				if r.Err != nil || r.Stdout != "ok\n" {
					t.Fatalf("got %+v", r)
				}
				return
			}
			wantErr(t, r.Err, tc.kind, tc.code, tc.fragments...)
		})
	}
}

// TestOverride checks that Options.Override (the command line's connection
// flags) wins over the target's inventory settings, and that a user or
// port written in the target's URI wins over it, against a real sshd.
func TestOverride(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	wrongKey := keygen(t, t.TempDir(), "wrong", "")
	right := map[string]any{"user": s.User, "port": s.Port, "private-key": s.ClientKeyFile}
	tests := []struct {
		name      string
		tg        *muster.Target
		override  map[string]any
		fragments []string // nil: success, as s.User
	}{
		{"inventory alone is wrong",
			&muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: s.Port, User: "muster-nosuchuser",
				Config: map[string]any{"ssh": map[string]any{"user": "muster-nosuchuser", "port": s.Port, "private-key": s.ClientKeyFile}}},
			nil, []string{"muster-nosuchuser@127.0.0.1"}},
		{"override user, port and key win",
			&muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Port: 1, User: "muster-nosuchuser",
				Config: map[string]any{"ssh": map[string]any{"user": "muster-nosuchuser", "port": 1, "private-key": wrongKey}}},
			right, nil},
		{"override wins over a target without settings",
			&muster.Target{Name: "web1", Transport: "ssh", Host: "127.0.0.1", Config: map[string]any{}},
			right, nil},
		{"URI user wins over the override",
			&muster.Target{Name: "muster-nosuchuser@127.0.0.1", URI: fmt.Sprintf("muster-nosuchuser@127.0.0.1:%d", s.Port), Transport: "ssh",
				Host: "127.0.0.1", Port: s.Port, User: "muster-nosuchuser", Config: map[string]any{"ssh": map[string]any{"user": "muster-nosuchuser", "port": s.Port}}},
			right, []string{fmt.Sprintf("muster-nosuchuser@127.0.0.1:%d", s.Port)}},
		{"URI port wins over the override",
			&muster.Target{Name: "web1", URI: fmt.Sprintf("ssh://127.0.0.1:%d", s.Port), Transport: "ssh",
				Host: "127.0.0.1", Port: s.Port, Config: map[string]any{"ssh": map[string]any{"port": s.Port}}},
			map[string]any{"user": s.User, "port": 1, "private-key": s.ClientKeyFile}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var logs []string
			tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none", Override: tc.override,
				Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }})
			defer tr.Close()
			r := run(t, tr, tc.tg, "id -un")
			if tc.fragments == nil {
				if r.Err != nil || r.Stdout != s.User+"\n" {
					t.Fatalf("got %+v", r)
				}
				if len(logs) == 0 || !strings.Contains(logs[0], s.User+"@127.0.0.1") {
					t.Errorf("debug log %q does not name the endpoint", logs)
				}
				return
			}
			wantErr(t, r.Err, muster.KindAuth, "AUTH_ERROR", tc.fragments...)
		})
	}
}
