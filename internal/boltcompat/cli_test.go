package boltcompat

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/muster-run/muster/internal/testkit/sshtest"
)

// The command-line cases run the real muster binary, built once from
// cmd/muster, as a Bolt user runs bolt: flags, exit codes, files in the
// project.

var binDir string

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var buildMuster = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "boltcompat-bin-")
	if err != nil {
		return "", err
	}
	binDir = dir
	bin := filepath.Join(dir, "muster")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/muster-run/muster/cmd/muster").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/muster: %v\n%s", err, out)
	}
	return bin, nil
})

type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// cli runs muster with args, standard input stdin (a pipe: not a
// terminal), HOME set to a fresh directory (no known_hosts, no user
// defaults) and env added.
func cli(t *testing.T, env []string, stdin string, args ...string) cliResult {
	t.Helper()
	bin, err := buildMuster()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	home := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(home, ".ssh"), 0o700))
	cmd.Env = append(os.Environ(), "HOME="+home, "MUSTER_PROJECT=", "NO_COLOR=1")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("muster %v: %v", args, err)
	}
	return cliResult{code, out.String(), errOut.String()}
}

// items decodes Bolt's JSON document and returns its items.
func items(t *testing.T, r cliResult) []map[string]any {
	t.Helper()
	var doc struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
		t.Fatalf("not Bolt's JSON document: %v\n%s", err, r)
	}
	return doc.Items
}

// statuses maps each item's target to its status.
func statuses(t *testing.T, r cliResult) map[string]any {
	t.Helper()
	out := map[string]any{}
	for _, it := range items(t, r) {
		out[it["target"].(string)] = it["status"]
	}
	return out
}

// TestCLISecret: `muster secret createkeys|encrypt|decrypt` use Bolt's key
// layout and envelope: OpenSSL (standing in for Bolt, which uses the same
// OpenSSL calls) decrypts what muster encrypts with its keys, and muster
// decrypts what OpenSSL encrypted with keys OpenSSL made.
func TestCLISecret(t *testing.T) {
	needOpenSSL(t)
	dir := t.TempDir()
	if r := cli(t, nil, "", "secret", "createkeys", "--project", dir); r.code != 0 {
		t.Fatalf("createkeys: %s", r)
	}
	keys := filepath.Join(dir, "keys")
	for _, f := range []string{"private_key.pkcs7.pem", "public_key.pkcs7.pem"} {
		if _, err := os.Stat(filepath.Join(keys, f)); err != nil {
			t.Fatalf("createkeys wrote no keys/%s: %v", f, err)
		}
	}
	r := cli(t, nil, "", "secret", "encrypt", "muster to bolt", "--project", dir)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "ENC[PKCS7,") {
		t.Fatalf("encrypt: %s", r)
	}
	if got := opensslDecrypt(t, keys, r.stdout); got != "muster to bolt" {
		t.Errorf("OpenSSL decrypts muster's value to %q", got)
	}
	// the other way: keys and value made by OpenSSL, as by Bolt
	boltDir := t.TempDir()
	opensslKeys(t, filepath.Join(boltDir, "keys"))
	value := opensslEncrypt(t, filepath.Join(boltDir, "keys", "public_key.pkcs7.pem"), []byte("bolt to muster"))
	r = cli(t, nil, "", "secret", "decrypt", value, "--project", boltDir)
	if r.code != 0 || strings.TrimSpace(r.stdout) != "bolt to muster" {
		t.Fatalf("decrypt of OpenSSL's value: %s", r)
	}
	// muster encrypts with OpenSSL's keys, and OpenSSL reads it
	r = cli(t, nil, "", "secret", "encrypt", "round trip", "--project", boltDir)
	if r.code != 0 {
		t.Fatalf("encrypt with OpenSSL's keys: %s", r)
	}
	if got := opensslDecrypt(t, filepath.Join(boltDir, "keys"), r.stdout); got != "round trip" {
		t.Errorf("OpenSSL decrypts %q", got)
	}
}

// TestCLIInventoryShowRedacts: values from pkcs7 (and prompt) are
// sensitive, and `inventory show --detail` redacts them.
func TestCLIInventoryShowRedacts(t *testing.T) {
	dir := copyCase(t, "inventory/pkcs7_openssl")
	setupPKCS7(t, dir)
	for _, format := range []string{"human", "json"} {
		r := cli(t, nil, "", "inventory", "show", "-t", "vault1", "--detail", "--format", format, "--project", dir)
		if r.code != 0 {
			t.Fatalf("inventory show: %s", r)
		}
		containsAll(t, format+" inventory show", r.stdout, []string{"vault1", "redacted"})
		containsNone(t, format+" inventory show", r.stdout, []string{"correct horse battery staple", "tok-123"})
	}
}

// TestCLIPromptNonInteractive: the prompt plugin without a terminal fails
// with an error that names the target, the key and the prompt.
func TestCLIPromptNonInteractive(t *testing.T) {
	dir := copyCase(t, "cli/prompt")
	r := cli(t, nil, "", "inventory", "show", "-t", "db1", "--detail", "--project", dir)
	if r.code == 0 {
		t.Fatalf("inventory show answered without a terminal: %s", r)
	}
	containsAll(t, "error", r.stderr, []string{`plugin "prompt"`, "config.ssh.password", "Database password", "not a terminal", "inventory.yaml:9"})
}

// TestCLIRerun: every run writes .rerun.json in the project ([{target,
// status}]), and --rerun failure|success|all acts on those targets.
func TestCLIRerun(t *testing.T) {
	dir := copyCase(t, "cli/rerun")
	script := filepath.Join(dir, "check.sh")
	r := cli(t, nil, "", "script", "run", script, "-t", "healthy,broken", "--format", "json", "--project", dir)
	if r.code != 1 {
		t.Fatalf("script run: want exit 1 (one target failed): %s", r)
	}
	readRerun := func() []map[string]any {
		var rerun []map[string]any
		b, err := os.ReadFile(filepath.Join(dir, ".rerun.json"))
		must(t, err)
		must(t, json.Unmarshal(b, &rerun))
		sort.Slice(rerun, func(i, j int) bool { return rerun[i]["target"].(string) < rerun[j]["target"].(string) })
		return rerun
	}
	checkSubset(t, ".rerun.json", []any{
		map[string]any{"target": "broken", "status": "failure"},
		map[string]any{"target": "healthy", "status": "success"},
	}, readRerun())

	r = cli(t, nil, "", "command", "run", "echo again", "--rerun", "success", "--no-save-rerun", "--format", "json", "--project", dir)
	if r.code != 0 {
		t.Fatalf("--rerun success: %s", r)
	}
	checkSubset(t, "--rerun success", map[string]any{"healthy": "success"}, statuses(t, r))
	if len(items(t, r)) != 1 {
		t.Errorf("--rerun success ran on %d targets", len(items(t, r)))
	}

	r = cli(t, nil, "", "command", "run", "echo again", "--rerun", "failure", "--format", "json", "--project", dir)
	if r.code != 0 || len(items(t, r)) != 1 {
		t.Fatalf("--rerun failure: %s", r)
	}
	checkSubset(t, "--rerun failure", map[string]any{"broken": "success"}, statuses(t, r))
	// that run rewrote the file: broken now succeeded
	checkSubset(t, ".rerun.json after --rerun failure", []any{map[string]any{"target": "broken", "status": "success"}}, readRerun())

	// differs from Bolt (which always has a project): in a directory
	// without a project file the record goes to the user's state
	// directory, not into the directory.
	bare := t.TempDir()
	state := t.TempDir()
	r = cli(t, []string{"XDG_STATE_HOME=" + state}, "", "command", "run", "true", "-t", "localhost", "--project", bare)
	if r.code != 0 {
		t.Fatalf("run without a project file: %s", r)
	}
	if _, err := os.Stat(filepath.Join(bare, ".rerun.json")); err == nil {
		t.Error(".rerun.json written into a directory without a project file")
	}
	if _, err := os.Stat(filepath.Join(state, "muster", ".rerun.json")); err != nil {
		t.Errorf("no .rerun.json in the state directory: %v", err)
	}

	r = cli(t, nil, "", "command", "run", "true", "--rerun", "sometimes", "--project", dir)
	if r.code != 2 || !strings.Contains(r.stderr, "failure") {
		t.Errorf("--rerun sometimes: want a usage error naming the choices: %s", r)
	}
}

// TestCLILogLevel: Bolt's --log-level names are accepted; others are a
// usage error listing them.
func TestCLILogLevel(t *testing.T) {
	for _, lvl := range []string{"trace", "debug", "info", "warn", "error", "fatal"} {
		if r := cli(t, nil, "", "command", "run", "true", "-t", "localhost", "--log-level", lvl); r.code != 0 {
			t.Errorf("--log-level %s: %s", lvl, r)
		}
	}
	r := cli(t, nil, "", "command", "run", "true", "-t", "localhost", "--log-level", "loud")
	if r.code != 2 || !strings.Contains(r.stderr, "trace, debug, info, warn, error, fatal") {
		t.Errorf("--log-level loud: %s", r)
	}
}

// TestCLINoPasswordFlag: differs from Bolt: muster has no -p/--password
// (a password on the command line lands in shell history and ps); it
// takes --password-prompt, MUSTER_PASSWORD or the inventory.
func TestCLINoPasswordFlag(t *testing.T) {
	r := cli(t, nil, "", "command", "run", "true", "-t", "localhost", "-p", "hunter2")
	if r.code != 2 || !strings.Contains(r.stderr, "-p") {
		t.Errorf("-p PASSWORD: want a usage error: %s", r)
	}
	containsNone(t, "error", r.stderr+r.stdout, []string{"hunter2"})
}

// TestCLIProjectInit: `muster project init NAME` writes the project file,
// an example inventory that loads as written, and a module skeleton.
func TestCLIProjectInit(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "webfarm")
	r := cli(t, nil, "", "project", "init", "webfarm", "--project", dir)
	if r.code != 0 {
		t.Fatalf("project init: %s", r)
	}
	b, err := os.ReadFile(filepath.Join(dir, "muster-project.yaml"))
	if err != nil || !strings.Contains(string(b), "name: webfarm") {
		t.Errorf("muster-project.yaml: %q %v", b, err)
	}
	for _, p := range []string{"inventory.yaml", "modules/webfarm/tasks", "modules/webfarm/plans", "modules/webfarm/files"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("project init wrote no %s: %v", p, err)
		}
	}
	if r := cli(t, nil, "", "inventory", "show", "--project", dir); r.code != 0 {
		t.Errorf("the new project's inventory does not load: %s", r)
	}
	if r := cli(t, nil, "", "project", "init", "webfarm", "--project", dir); r.code == 0 {
		t.Errorf("a second init overwrote the project: %s", r)
	}
}

// sshProject starts a real sshd and writes a project whose inventory
// reaches it with the given ssh config lines (indented under ssh:).
func sshProject(t *testing.T, s *sshtest.Server, sshConfig string) string {
	t.Helper()
	dir := t.TempDir()
	inv := fmt.Sprintf("targets:\n  - name: box\n    uri: 127.0.0.1\n    config:\n      transport: ssh\n      ssh:\n        private-key: %s\n%s",
		s.ClientKeyFile, sshConfig)
	writeFiles(t, dir, map[string]string{"inventory.yaml": inv})
	return dir
}

// TestCLISSHOptions: over real sshd, the known-hosts setting (inventory
// and --known-hosts; a muster extension), Bolt's --no-host-key-check, and
// connection flags overriding the inventory.
func TestCLISSHOptions(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	port := fmt.Sprint(s.Port)
	right := fmt.Sprintf("        user: %s\n        port: %d\n", s.User, s.Port)
	tests := []struct {
		name   string
		config string
		flags  []string
		ok     bool
		errHas string
	}{
		{"known-hosts in the inventory's ssh config", right + "        known-hosts: " + s.KnownHostsFile + "\n", nil, true, ""},
		{"no known host: the host key check fails", right, nil, false, "host key"},
		{"known-hosts naming a file without the host", right + "        known-hosts: /dev/null\n", nil, false, "host key"},
		{"--no-host-key-check (Bolt's spelling)", right, []string{"--no-host-key-check"}, true, ""},
		{"host-key-check: false in the inventory", right + "        host-key-check: false\n", nil, true, ""},
		{"--known-hosts on the command line", right, []string{"--known-hosts", s.KnownHostsFile}, true, ""},
		{"--known-hosts overrides the inventory's", right + "        known-hosts: /dev/null\n", []string{"--known-hosts", s.KnownHostsFile}, true, ""},
		// differs from Bolt: Bolt ranks inventory config above CLI
		// options; in muster the command line overrides the inventory,
		// so a one-off run can fix a wrong user or port.
		{"--user and --port override the inventory", "        user: nobody-here\n        port: 1\n        host-key-check: false\n",
			[]string{"--user", s.User, "--port", port}, true, ""},
		{"without the flags the inventory's wrong port is used", "        user: nobody-here\n        port: 1\n        host-key-check: false\n",
			nil, false, "127.0.0.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := sshProject(t, s, tc.config)
			args := append([]string{"command", "run", "id -un", "-t", "box", "--format", "json", "--project", dir}, tc.flags...)
			r := cli(t, nil, "", args...)
			if tc.ok {
				its := items(t, r)
				if r.code != 0 || len(its) != 1 || its[0]["value"].(map[string]any)["stdout"] != s.User+"\n" {
					t.Fatalf("want success as %s: %s", s.User, r)
				}
				return
			}
			if r.code != 1 || !strings.Contains(strings.ToLower(r.stdout+r.stderr), tc.errHas) {
				t.Fatalf("want a failure with %q: %s", tc.errHas, r)
			}
		})
	}
	// --log-level debug shows each connection's user, address and
	// known_hosts file.
	dir := sshProject(t, s, right+"        known-hosts: "+s.KnownHostsFile+"\n")
	r := cli(t, nil, "", "command", "run", "true", "-t", "box", "--log-level", "debug", "--project", dir)
	if r.code != 0 {
		t.Fatalf("--log-level debug: %s", r)
	}
	containsAll(t, "debug log", r.stderr, []string{"Debug:", s.User, s.KnownHostsFile})
}

// TestCLIApply: `muster apply MANIFEST -t`, `apply -e CODE` and `apply
// prep`, with real Puppet on this machine through the local transport;
// the manifest uses a class from the project's module path.
func TestCLIApply(t *testing.T) {
	needPuppet(t)
	dir := copyCase(t, "cli/apply")
	r := cli(t, nil, "", "apply", filepath.Join(dir, "site.pp"), "-t", "localhost", "--format", "json", "--project", dir)
	if r.code != 0 {
		t.Fatalf("apply site.pp: %s", r)
	}
	its := items(t, r)
	checkSubset(t, "apply result", []any{map[string]any{"target": "localhost", "action": "apply", "status": "success",
		"value": map[string]any{"report": map[string]any{"status": "changed"}}}}, its)
	if b, err := os.ReadFile(filepath.Join(dir, "motd.txt")); err != nil || string(b) != "applied by muster apply\n" {
		t.Errorf("motd.txt = %q, %v", b, err)
	}
	// -e CODE, with --noop: nothing changes
	code := fmt.Sprintf("file { '%s': ensure => absent }", filepath.Join(dir, "motd.txt"))
	r = cli(t, nil, "", "apply", "-e", code, "--noop", "-t", "localhost", "--format", "json", "--project", dir)
	if r.code != 0 {
		t.Fatalf("apply -e --noop: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "motd.txt")); err != nil {
		t.Errorf("--noop removed the file: %v", err)
	}
	r = cli(t, nil, "", "apply", "-e", code, "-t", "localhost", "--format", "json", "--project", dir)
	if _, err := os.Stat(filepath.Join(dir, "motd.txt")); r.code != 0 || err == nil {
		t.Errorf("apply -e did not remove the file: %s", r)
	}
	// apply prep: puppet is here
	r = cli(t, nil, "", "apply", "prep", "-t", "localhost", "--format", "json", "--project", dir)
	if r.code != 0 || !strings.Contains(r.stdout, "puppet") {
		t.Fatalf("apply prep: %s", r)
	}
	// apply prep where puppet is missing (a PATH holding every command of
	// /usr/bin but puppet's): the target fails, and is named.
	bin := t.TempDir()
	ents, err := os.ReadDir("/usr/bin")
	must(t, err)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "puppet") {
			must(t, os.Symlink(filepath.Join("/usr/bin", e.Name()), filepath.Join(bin, e.Name())))
		}
	}
	r = cli(t, []string{"PATH=" + bin}, "", "apply", "prep", "-t", "localhost", "--project", dir)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, "Puppet is not installed on localhost") {
		t.Errorf("apply prep without puppet: %s", r)
	}
}
