package boltcompat

import (
	"os/exec"
	"strings"
	"testing"
)

// TestBuiltinModules: the modules muster ships (package, service, facts,
// reboot) take the parameters Bolt documents for its own and answer in
// its result shapes. They run from an empty project: the built-in
// modules are on every module path. Only read-only actions run here (a
// package's status, facts, the last boot time); reboot is only checked
// for its parameters.
func TestBuiltinModules(t *testing.T) {
	dir := t.TempDir()
	version := ""
	if out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", "coreutils").Output(); err == nil {
		version = string(out)
	}
	tests := []struct {
		name     string
		task     string
		params   map[string]any
		want     map[string]any
		startErr []string
		needDpkg bool
	}{
		{name: "package status of an installed package", task: "package", params: map[string]any{"action": "status", "name": "coreutils"},
			want: map[string]any{"status": "installed", "version": version}, needDpkg: true},
		{name: "package status of a missing package", task: "package", params: map[string]any{"action": "status", "name": "muster-no-such-package"},
			want: map[string]any{"status": "uninstalled"}, needDpkg: true},
		{name: "package refuses an action Bolt's package task does not have", task: "package", params: map[string]any{"action": "purge", "name": "x"},
			startErr: []string{"action"}},
		{name: "service needs a name", task: "service", params: map[string]any{"action": "status"}, startErr: []string{"name"}},
		{name: "facts in facter's shape", task: "facts", params: map[string]any{},
			want: map[string]any{"os": map[string]any{"family": "*", "name": "*"}, "kernel": "Linux"}},
		{name: "reboot::last_boot_time", task: "reboot::last_boot_time", params: map[string]any{}, want: map[string]any{"last_boot_time": "*"}},
		{name: "reboot refuses a timeout that is not a number", task: "reboot", params: map[string]any{"timeout": "soon"}, startErr: []string{"timeout"}},
		{name: "reboot refuses a message with a shell metacharacter", task: "reboot", params: map[string]any{"message": "a | b"}, startErr: []string{"message"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needDpkg && version == "" {
				t.Skip("no dpkg here: the package status cases need an apt system")
			}
			rs, _, err := taskRun(t, dir, "localhost", tc.task, tc.params, false)
			if tc.startErr != nil {
				if err == nil {
					t.Fatalf("the task started: %s", short(rs))
				}
				containsAll(t, "error", err.Error(), tc.startErr)
				return
			}
			if err != nil || len(rs) != 1 {
				t.Fatalf("run: %v %s", err, short(rs))
			}
			if rs[0].Error != nil {
				t.Fatalf("error %v (value %s)", rs[0].Error, short(rs[0].Value))
			}
			checkSubset(t, tc.task+" value", tc.want, rs[0].Value)
			if strings.Contains(short(rs[0].Value), "_error") {
				t.Errorf("value carries _error: %s", short(rs[0].Value))
			}
		})
	}
}
