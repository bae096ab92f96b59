package builtin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// initScript is a real LSB init script: start runs a daemon (sleep, in
// its own session, its pid in a file), status exits 0 while it runs.
const initScript = `#!/bin/sh
### BEGIN INIT INFO
# Provides:          %[1]s
# Required-Start:
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:      0 1 6
# Short-Description: muster built-in service task test
### END INIT INFO
PIDFILE=%[2]s
case "$1" in
start)
	setsid sleep 100000 </dev/null >/dev/null 2>&1 &
	echo $! >"$PIDFILE"
	echo "Starting %[1]s"
	;;
stop)
	[ -f "$PIDFILE" ] && kill "$(cat "$PIDFILE")"
	rm -f "$PIDFILE"
	;;
restart)
	"$0" stop
	"$0" start
	;;
status)
	[ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
	;;
*)
	echo "Usage: $0 {start|stop|restart|status}" >&2
	exit 3
	;;
esac
`

// installInitScript puts a test service in /etc/init.d and removes it,
// its rc links and its daemon when the test ends.
func installInitScript(t *testing.T) (name, pidfile string) {
	t.Helper()
	switch {
	case !isRoot():
		t.Skip("installing an init script needs root")
	case systemdRunning():
		t.Skip("systemd is running here, and the service command hands /etc/init.d scripts to it")
	case !havePath("update-rc.d") && !havePath("chkconfig"):
		t.Skip("neither update-rc.d nor chkconfig is installed")
	}
	name = fmt.Sprintf("muster-builtin-test-%d", os.Getpid())
	pidfile = filepath.Join(t.TempDir(), name+".pid")
	script := filepath.Join("/etc/init.d", name)
	must(t, os.WriteFile(script, []byte(fmt.Sprintf(initScript, name, pidfile)), 0o755))
	t.Cleanup(func() {
		exec.Command(script, "stop").Run()
		if havePath("update-rc.d") {
			exec.Command("update-rc.d", "-f", name, "remove").Run()
		} else {
			exec.Command("chkconfig", "--del", name).Run()
		}
		os.Remove(script)
	})
	return name, pidfile
}

// The whole life of a sysvinit service: each action, its result, and
// what the machine then shows (the daemon's process, the rc links).
func TestServiceSysvinitLifecycle(t *testing.T) {
	name, pidfile := installInitScript(t)
	daemon := func() bool {
		b, err := os.ReadFile(pidfile)
		if err != nil {
			return false
		}
		return exec.Command("kill", "-0", strings.TrimSpace(string(b))).Run() == nil
	}
	links := func() bool {
		m, _ := filepath.Glob("/etc/rc[2345].d/S[0-9][0-9]" + name)
		return len(m) > 0 || havePath("chkconfig") && exec.Command("chkconfig", name).Run() == nil
	}
	steps := []struct {
		action      string
		want        map[string]any
		running, on bool
	}{
		{"status", map[string]any{"status": "stopped", "enabled": "false"}, false, false},
		{"start", map[string]any{"status": "started"}, true, false},
		{"start", map[string]any{"status": "in_sync"}, true, false},
		{"status", map[string]any{"status": "running", "enabled": "false"}, true, false},
		{"restart", map[string]any{"status": "restarted"}, true, false},
		{"enable", map[string]any{"status": "enabled"}, true, true},
		{"enable", map[string]any{"status": "in_sync"}, true, true},
		{"status", map[string]any{"status": "running", "enabled": "true"}, true, true},
		{"disable", map[string]any{"status": "disabled"}, true, false},
		{"disable", map[string]any{"status": "in_sync"}, true, false},
		{"stop", map[string]any{"status": "stopped"}, false, false},
		{"stop", map[string]any{"status": "in_sync"}, false, false},
		{"status", map[string]any{"status": "stopped", "enabled": "false"}, false, false},
	}
	for i, st := range steps {
		v, code := run(t, "service/tasks/init.sh", map[string]string{"action": st.action, "name": name})
		if code != 0 || !equalJSON(v, st.want) {
			t.Fatalf("step %d %s: %v (exit %d), want %v", i, st.action, v, code, st.want)
		}
		if daemon() != st.running {
			t.Fatalf("step %d %s: daemon running = %v, want %v", i, st.action, daemon(), st.running)
		}
		if links() != st.on {
			t.Fatalf("step %d %s: enabled on disk = %v, want %v", i, st.action, links(), st.on)
		}
	}
	// The same with the manager and the Puppet provider named.
	for _, p := range []map[string]string{{"manager": "sysvinit"}, {"provider": "debian"}, {"provider": "init"}} {
		p["action"], p["name"] = "status", name
		if v, code := run(t, "service/tasks/init.sh", p); code != 0 || v["status"] != "stopped" {
			t.Errorf("%v: %v (exit %d)", p, v, code)
		}
	}
}

func equalJSON(got, want map[string]any) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// A service that the machine does not have: status says stopped and
// disabled, as Puppet does; an action on it is a not-found error.
func TestServiceUnknown(t *testing.T) {
	v, code := run(t, "service/tasks/init.sh", map[string]string{"action": "status", "name": "muster-no-such-service"})
	if code != 0 || !equalJSON(v, map[string]any{"status": "stopped", "enabled": "false"}) {
		t.Errorf("status: %v (exit %d)", v, code)
	}
	v, code = run(t, "service/tasks/init.sh", map[string]string{"action": "start", "name": "muster-no-such-service"})
	wantError(t, v, code, "service/not-found", "muster-no-such-service")
}

// status of a service the machine ships, through whichever manager runs.
func TestServiceStatusOfSystemService(t *testing.T) {
	var name string
	for _, n := range []string{"cron", "ssh", "rsync", "procps", "dbus", "systemd-journald"} {
		if _, err := os.Stat("/etc/init.d/" + n); err == nil {
			name = n
			break
		}
		if systemdRunning() && exec.Command("systemctl", "cat", n).Run() == nil {
			name = n
			break
		}
	}
	if name == "" {
		t.Skip("no known service on this machine")
	}
	v, code := run(t, "service/tasks/init.sh", map[string]string{"action": "status", "name": name})
	if code != 0 || (v["status"] != "running" && v["status"] != "stopped") || (v["enabled"] != "true" && v["enabled"] != "false") {
		t.Errorf("status of %s: %v (exit %d)", name, v, code)
	}
}

// Without systemd as PID 1, asking for systemd is a clear error naming
// what runs instead; with it, its status works.
func TestServiceSystemd(t *testing.T) {
	v, code := run(t, "service/tasks/init.sh", map[string]string{"action": "status", "name": "cron", "manager": "systemd"})
	if !systemdRunning() {
		wantError(t, v, code, "service/unsupported", "systemd is not running", "PID 1 is "+pid1())
		v, code = run(t, "service/tasks/init.sh", map[string]string{"action": "status", "name": "cron", "provider": "systemd"})
		wantError(t, v, code, "service/unsupported", "systemd is not running")
		return
	}
	if code != 0 || (v["status"] != "running" && v["status"] != "stopped") {
		t.Errorf("status of cron with systemd: %v (exit %d)", v, code)
	}
}

// fakeShutdown puts a shutdown command first on PATH that records its
// arguments in a file, so that the reboot task can run for real without
// rebooting the machine.
func fakeShutdown(t *testing.T) (pathEnv, record string) {
	t.Helper()
	bin := t.TempDir()
	record = filepath.Join(bin, "args")
	must(t, os.WriteFile(filepath.Join(bin, "shutdown"), []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" >"+record+".tmp && mv "+record+".tmp "+record+"\n"), 0o755))
	return "PATH=" + bin + ":" + os.Getenv("PATH"), record
}

// waitFile waits for the reboot job, which runs after the task answered.
func waitFile(t *testing.T, p string) string {
	t.Helper()
	for range 600 {
		if b, err := os.ReadFile(p); err == nil {
			return string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never appeared: the queued reboot did not run", p)
	return ""
}

// The reboot task answers "queued" at once and then runs shutdown -r
// with the whole minutes left and the message; a timeout below 3 s is
// raised to 3.
func TestRebootQueues(t *testing.T) {
	if !isRoot() {
		v, code := run(t, "reboot/tasks/init.sh", nil, "PATH=/nonexistent:/usr/bin:/bin")
		if code != 1 {
			t.Fatalf("as a user, reboot answered %v", v)
		}
		t.Skip("the reboot task needs root; checked that it refuses without")
	}
	for _, tc := range []struct {
		params      map[string]string
		wantTimeout float64
		wantArgs    string
	}{
		{map[string]string{"timeout": "0", "message": "kernel update, back soon"}, 3, "-r\n+0\nkernel update, back soon\n"},
		{map[string]string{}, 3, "-r\n+0\n"},
		{map[string]string{"timeout": "04"}, 4, "-r\n+0\n"},
	} {
		pathEnv, record := fakeShutdown(t)
		v, code := run(t, "reboot/tasks/init.sh", tc.params, pathEnv)
		if code != 0 || !equalJSON(v, map[string]any{"status": "queued", "timeout": tc.wantTimeout}) {
			t.Fatalf("%v: %v (exit %d)", tc.params, v, code)
		}
		if got := waitFile(t, record); got != tc.wantArgs {
			t.Errorf("%v: shutdown got %q, want %q", tc.params, got, tc.wantArgs)
		}
	}
}

// On a machine whose shutdown is systemd's while systemd is not PID 1
// (this test machine), the task says so instead of queueing a reboot
// that cannot happen.
func TestRebootWithoutSystemd(t *testing.T) {
	sd, err := exec.LookPath("shutdown")
	if err != nil {
		for _, p := range []string{"/usr/sbin/shutdown", "/sbin/shutdown"} {
			if _, err := os.Stat(p); err == nil {
				sd = p
			}
		}
	}
	real, _ := filepath.EvalSymlinks(sd)
	if sd == "" || filepath.Base(real) != "systemctl" || systemdRunning() {
		t.Skip("this test only runs where shutdown is systemd's and systemd is not running (it must never reboot the machine)")
	}
	v, code := run(t, "reboot/tasks/init.sh", map[string]string{"timeout": "3"})
	wantError(t, v, code, "reboot/unsupported", "systemd is not running", "PID 1 is "+pid1())
}

// last_boot_time gives the kernel's boot time and boot id.
func TestLastBootTime(t *testing.T) {
	v, code := run(t, "reboot/tasks/last_boot_time.sh", nil)
	if code != 0 {
		t.Fatalf("exit %d: %v", code, v)
	}
	id, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		t.Skip("no boot id on this machine")
	}
	if v["boot_id"] != strings.TrimSpace(string(id)) {
		t.Errorf("boot_id = %v, want %s", v["boot_id"], id)
	}
	stat, _ := os.ReadFile("/proc/stat")
	var btime float64
	for _, line := range strings.Split(string(stat), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "btime" {
			fmt.Sscan(f[1], &btime)
		}
	}
	if v["epoch"] != btime {
		t.Errorf("epoch = %v, want %v", v["epoch"], btime)
	}
	when, err := time.Parse("2006-01-02T15:04:05-0700", v["last_boot_time"].(string))
	if err != nil || when.Unix() != int64(btime) {
		t.Errorf("last_boot_time = %v (%v), want the time of %v", v["last_boot_time"], err, btime)
	}
}
