package builtin

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// run runs a built-in task's script with sh as Bolt's environment input
// method does (PT_<name> variables, PT__installdir the directory holding
// the task's files: the built-in modules' copy has their layout), and
// returns its stdout as the JSON object every result must be, with the
// exit code. env adds variables (such as PATH) to the test's environment.
func run(t *testing.T, script string, params map[string]string, env ...string) (map[string]any, int) {
	t.Helper()
	cmd := exec.Command("sh", filepath.Join(builtinDir(t), script))
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PT__installdir="+builtinDir(t))
	for k, v := range params {
		cmd.Env = append(cmd.Env, "PT_"+k+"="+v)
	}
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	var v map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v == nil {
		t.Fatalf("%s %v: stdout is not one JSON object (%v):\n%s\nstderr:\n%s", script, params, err, stdout.Bytes(), stderr.Bytes())
	}
	return v, code
}

// wantError checks a failed result: exit code 1 and Bolt's _error object
// with kind, msg (containing each of msgHas) and details.
func wantError(t *testing.T, v map[string]any, code int, kind string, msgHas ...string) {
	t.Helper()
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	e, ok := v["_error"].(map[string]any)
	if !ok {
		t.Fatalf("no _error object in %v", v)
	}
	if e["kind"] != kind {
		t.Errorf("_error.kind = %v, want %s (%v)", e["kind"], kind, e["msg"])
	}
	msg, _ := e["msg"].(string)
	for _, s := range msgHas {
		if !strings.Contains(msg, s) {
			t.Errorf("_error.msg %q does not contain %q", msg, s)
		}
	}
	if _, ok := e["details"].(map[string]any); !ok {
		t.Errorf("_error.details is not an object: %v", e["details"])
	}
}

func isRoot() bool { return os.Geteuid() == 0 }

// systemdRunning is the test of sd_booted(3), as the tasks make it.
func systemdRunning() bool {
	st, err := os.Stat("/run/systemd/system")
	return err == nil && st.IsDir()
}

func pid1() string {
	b, _ := os.ReadFile("/proc/1/comm")
	return strings.TrimSpace(string(b))
}

// Bad input gets Bolt's error shape, naming the parameter.
func TestBadInput(t *testing.T) {
	for i, tc := range []struct {
		script string
		params map[string]string
		kind   string
		msg    []string
	}{
		{"package/tasks/init.sh", map[string]string{"action": "purge", "name": "x"}, "package/invalid-parameter", []string{"'action'", "purge"}},
		{"package/tasks/init.sh", map[string]string{"name": "x"}, "package/invalid-parameter", []string{"'action' is required"}},
		{"package/tasks/init.sh", map[string]string{"action": "status"}, "package/invalid-parameter", []string{"'name' is required"}},
		{"package/tasks/init.sh", map[string]string{"action": "status", "name": "-o"}, "package/invalid-parameter", []string{"'name'", "-o"}},
		{"package/tasks/init.sh", map[string]string{"action": "status", "name": "a b"}, "package/invalid-parameter", []string{"white space"}},
		{"package/tasks/init.sh", map[string]string{"action": "status", "name": "x", "version": "--force"}, "package/invalid-parameter", []string{"'version'"}},
		{"package/tasks/init.sh", map[string]string{"action": "status", "name": "x", "manager": "zypper"}, "package/invalid-parameter", []string{"'manager'", "zypper"}},
		{"package/tasks/init.sh", map[string]string{"action": "status", "name": "x", "provider": "gem"}, "package/invalid-parameter", []string{"'provider'", "gem"}},
		{"package/tasks/init.sh", map[string]string{"action": "status", "name": "x", "manager": "apt", "provider": "yum"}, "package/invalid-parameter", []string{"different"}},
		{"service/tasks/init.sh", map[string]string{"action": "reload", "name": "x"}, "service/invalid-parameter", []string{"'action'", "reload"}},
		{"service/tasks/init.sh", map[string]string{"action": "status"}, "service/invalid-parameter", []string{"'name' is required"}},
		{"service/tasks/init.sh", map[string]string{"action": "status", "name": "../../bin/sh"}, "service/invalid-parameter", []string{"not a path"}},
		{"service/tasks/init.sh", map[string]string{"action": "status", "name": "x", "provider": "launchd"}, "service/invalid-parameter", []string{"'provider'", "launchd"}},
		{"reboot/tasks/init.sh", map[string]string{"timeout": "soon"}, "reboot/invalid-parameter", []string{"'timeout'", "soon"}},
		{"reboot/tasks/init.sh", map[string]string{"message": "bye | rm -rf /"}, "reboot/invalid-parameter", []string{"'message'"}},
	} {
		t.Run(fmt.Sprintf("%d %s", i, tc.msg[0]), func(t *testing.T) {
			v, code := run(t, tc.script, tc.params)
			wantError(t, v, code, tc.kind, tc.msg...)
			if v["status"] != "failure" {
				t.Errorf("status = %v, want failure", v["status"])
			}
		})
	}
}

func havePath(names ...string) bool {
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			return false
		}
	}
	return true
}

func dpkgVersion(t *testing.T, pkg string) string {
	t.Helper()
	out, err := exec.Command("dpkg-query", "-W", "-f=${Status}\t${Version}", pkg).Output()
	if err != nil {
		return ""
	}
	status, version, _ := strings.Cut(string(out), "\t")
	if !strings.HasSuffix(status, " installed") {
		return ""
	}
	return version
}

// package status reports an installed package's version (as dpkg knows
// it) and a missing one as uninstalled.
func TestPackageStatus(t *testing.T) {
	if !havePath("apt-get", "dpkg-query", "apt-cache") {
		t.Skip("this machine has no apt: the status test reads dpkg's database")
	}
	v, code := run(t, "package/tasks/init.sh", map[string]string{"action": "status", "name": "coreutils"})
	if code != 0 || v["status"] != "installed" || v["version"] != dpkgVersion(t, "coreutils") || v["version"] == "" {
		t.Errorf("status of coreutils: %v (exit %d), want installed %s", v, code, dpkgVersion(t, "coreutils"))
	}
	if l, ok := v["latest"]; ok && (l == "" || l == v["version"]) {
		t.Errorf("latest = %v next to version %v", l, v["version"])
	}
	v, code = run(t, "package/tasks/init.sh", map[string]string{"action": "status", "name": "muster-no-such-package", "manager": "apt"})
	if code != 0 || v["status"] != "uninstalled" || v["version"] != "" {
		t.Errorf("status of a missing package: %v (exit %d), want uninstalled", v, code)
	}
	if havePath("dnf") || havePath("yum") {
		return
	}
	v, code = run(t, "package/tasks/init.sh", map[string]string{"action": "status", "name": "coreutils", "provider": "dnf"})
	wantError(t, v, code, "package/unsupported", "'dnf' is not installed")
}

// install, upgrade and uninstall a small real package with apt. The
// package is downloaded first into a private archive directory that
// manager_options then points apt at; without root, apt or a way to
// download it, the test is skipped.
func TestPackageInstallUninstall(t *testing.T) {
	const pkg = "hello"
	switch {
	case !isRoot():
		t.Skip("installing a package needs root")
	case !havePath("apt-get", "dpkg-query", "apt-cache"):
		t.Skip("this machine has no apt")
	case dpkgVersion(t, pkg) != "":
		t.Skipf("%s is installed already: the test does not remove a package it did not install", pkg)
	}
	archives := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(archives, "partial"), 0o755))
	opts := "-o Dir::Cache::archives=" + archives
	dl := exec.Command("apt-get", "-y", "-q", "-o", "Dir::Cache::archives="+archives, "install", "--download-only", pkg)
	dl.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := dl.CombinedOutput(); err != nil {
		t.Skipf("apt cannot download %s here (%v): %s", pkg, err, lastLines(out, 3))
	}
	t.Cleanup(func() {
		if dpkgVersion(t, pkg) != "" {
			exec.Command("apt-get", "-y", "-q", "remove", pkg).Run()
		}
	})
	params := func(action string) map[string]string {
		return map[string]string{"action": action, "name": pkg, "manager_options": opts}
	}
	v, code := run(t, "package/tasks/init.sh", params("install"))
	installed := dpkgVersion(t, pkg)
	if code != 0 || v["status"] != "installed" || installed == "" || v["version"] != installed {
		t.Fatalf("install: %v (exit %d); dpkg says version %q", v, code, installed)
	}
	v, code = run(t, "package/tasks/init.sh", params("install"))
	if code != 0 || v["status"] != "installed" || v["version"] != installed {
		t.Errorf("second install: %v (exit %d)", v, code)
	}
	v, code = run(t, "package/tasks/init.sh", params("upgrade"))
	if code != 0 || v["old_version"] != installed || v["version"] != dpkgVersion(t, pkg) {
		t.Errorf("upgrade: %v (exit %d), want old_version %s", v, code, installed)
	}
	v, code = run(t, "package/tasks/init.sh", params("uninstall"))
	if code != 0 || v["status"] != "uninstalled" || dpkgVersion(t, pkg) != "" {
		t.Errorf("uninstall: %v (exit %d); dpkg says %q", v, code, dpkgVersion(t, pkg))
	}
	v, code = run(t, "package/tasks/init.sh", params("uninstall"))
	if code != 0 || v["status"] != "uninstalled" {
		t.Errorf("second uninstall: %v (exit %d)", v, code)
	}
	v, code = run(t, "package/tasks/init.sh", map[string]string{"action": "install", "name": "muster-no-such-package", "manager_options": opts})
	wantError(t, v, code, "package/command-failed", "apt could not install 'muster-no-such-package'")
	if d, _ := v["_error"].(map[string]any)["details"].(map[string]any); d == nil || d["exit_code"] == float64(0) ||
		!strings.Contains(d["output"].(string), "Unable to locate package") || !strings.HasPrefix(d["command"].(string), "apt-get") {
		t.Errorf("details of a failed install: %v", d)
	}
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// osRelease reads /etc/os-release as a map.
func osRelease(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("/etc/os-release")
	if err != nil {
		t.Skipf("no /etc/os-release to compare with: %v", err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if ok {
			out[k] = strings.Trim(v, `"'`)
		}
	}
	return out
}

func uname(t *testing.T, flag string) string {
	out, err := exec.Command("uname", flag).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// facts returns this machine's os facts, as /etc/os-release and uname
// give them.
func TestFacts(t *testing.T) {
	rel := osRelease(t)
	v, code := run(t, "facts/tasks/init.sh", nil)
	if code != 0 {
		t.Fatalf("exit %d: %v", code, v)
	}
	checkFacts(t, v, rel)
	if got := dig(v, "kernel"); got != uname(t, "-s") {
		t.Errorf("kernel = %v, want %s", got, uname(t, "-s"))
	}
	if got := dig(v, "kernelrelease"); got != uname(t, "-r") {
		t.Errorf("kernelrelease = %v, want %s", got, uname(t, "-r"))
	}
	host, _ := os.Hostname()
	if got := dig(v, "networking", "hostname"); got != strings.Split(host, ".")[0] {
		t.Errorf("networking.hostname = %v, want %s", got, host)
	}
	if fqdn, _ := dig(v, "networking", "fqdn").(string); !strings.HasPrefix(fqdn, dig(v, "networking", "hostname").(string)) {
		t.Errorf("networking.fqdn = %q does not start with the hostname", fqdn)
	}
}

// checkFacts compares the os facts with os-release.
func checkFacts(t *testing.T, v map[string]any, rel map[string]string) {
	t.Helper()
	names := map[string][2]string{"debian": {"Debian", "Debian"}, "ubuntu": {"Ubuntu", "Debian"},
		"rhel": {"RedHat", "RedHat"}, "centos": {"CentOS", "RedHat"}, "fedora": {"Fedora", "RedHat"},
		"rocky": {"Rocky", "RedHat"}, "almalinux": {"AlmaLinux", "RedHat"}, "alpine": {"Alpine", "Alpine"}}
	if want, ok := names[rel["ID"]]; ok {
		if got := dig(v, "os", "name"); got != want[0] {
			t.Errorf("os.name = %v, want %s", got, want[0])
		}
		if got := dig(v, "os", "family"); got != want[1] {
			t.Errorf("os.family = %v, want %s", got, want[1])
		}
	} else if dig(v, "os", "name") == "" || dig(v, "os", "family") == "" {
		t.Errorf("os.name or os.family empty: %v", v["os"])
	}
	full, _ := dig(v, "os", "release", "full").(string)
	if id := rel["VERSION_ID"]; id != "" && full != id && !strings.HasPrefix(full, id+".") {
		t.Errorf("os.release.full = %q, want %s or a point release of it", full, id)
	}
	major := strings.Split(rel["VERSION_ID"], ".")[0]
	if rel["ID"] == "ubuntu" {
		major = rel["VERSION_ID"]
	}
	if got := dig(v, "os", "release", "major"); got != major {
		t.Errorf("os.release.major = %v, want %s", got, major)
	}
	if _, rest, ok := strings.Cut(full, "."); ok && rel["ID"] != "ubuntu" {
		if got := dig(v, "os", "release", "minor"); got != strings.Split(rest, ".")[0] {
			t.Errorf("os.release.minor = %v, want %s", got, strings.Split(rest, ".")[0])
		}
	}
	if got := dig(v, "os", "distro", "codename"); got != rel["VERSION_CODENAME"] {
		t.Errorf("os.distro.codename = %v, want %s", got, rel["VERSION_CODENAME"])
	}
	if got := dig(v, "os", "distro", "description"); got != rel["PRETTY_NAME"] {
		t.Errorf("os.distro.description = %v, want %s", got, rel["PRETTY_NAME"])
	}
	if got := dig(v, "os", "hardware"); got != uname(t, "-m") {
		t.Errorf("os.hardware = %v, want %s", got, uname(t, "-m"))
	}
}

// dig returns the value at keys in nested objects, nil when absent.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
