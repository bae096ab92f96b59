package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// child is this test binary run as main in a process of its own ('muster
// server', 'muster agent'), with its stderr kept for Log.
type child struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  strings.Builder
	done chan struct{}
	exit error
}

// startChild starts `muster args...`, calling onLine (if set) with each
// line of its stderr. When the test ends the child gets SIGTERM when
// graceful (SIGKILL after 30 s), else SIGKILL at once, and its log is
// shown if the test failed.
func startChild(t *testing.T, name string, graceful bool, onLine func(string), args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MUSTER_TEST_AS_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			c.mu.Lock()
			c.log.WriteString(sc.Text() + "\n")
			c.mu.Unlock()
			if onLine != nil {
				onLine(sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		c.exit = cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		if graceful {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-c.done:
			case <-time.After(30 * time.Second):
			}
		}
		_ = cmd.Process.Kill()
		<-c.done
		if t.Failed() {
			t.Logf("%s log (%v):\n%s", name, args, c.Log())
		}
	})
	return c
}

// Log is what the child wrote to stderr so far.
func (c *child) Log() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

// serverProc is a 'muster server' child process, listening on a random
// loopback port.
type serverProc struct {
	*child
	t       *testing.T
	url     string
	dataDir string
}

var apiLine = regexp.MustCompile(`msg="muster server started".* api=(\S+)`)

// startServer starts a server for project dir with state in dataDir.
func startServer(t *testing.T, dir, dataDir string, args ...string) *serverProc {
	t.Helper()
	// The test projects run on this machine (transport local), which a
	// server allows only when told to; a test that checks the refusal
	// passes --allow-local-targets=false, which comes later and wins.
	argv := append([]string{"server", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--project", dir, "--allow-local-targets"}, args...)
	urls := make(chan string, 1)
	c := startChild(t, "server", false, func(line string) {
		if m := apiLine.FindStringSubmatch(line); m != nil {
			urls <- m[1]
		}
	}, argv...)
	p := &serverProc{child: c, t: t, dataDir: dataDir}
	select {
	case p.url = <-urls:
	case <-p.done:
		t.Fatalf("server exited at start (%v):\n%s", p.exit, p.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", p.Log())
	}
	return p
}

// client returns an API client with the server's admin token.
func (p *serverProc) client() *api.Client {
	p.t.Helper()
	tok, err := os.ReadFile(filepath.Join(p.dataDir, "admin.token"))
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := api.NewClient(p.url, strings.TrimSpace(string(tok)))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// stop sends sig and waits for the process to exit.
func (p *serverProc) stop(sig syscall.Signal) error {
	p.t.Helper()
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("server did not exit after %v:\n%s", sig, p.Log())
	}
	return p.exit
}

// env points the in-process CLI at p.
func (p *serverProc) env(t *testing.T) {
	t.Setenv("MUSTER_SERVER", p.url)
	t.Setenv("MUSTER_DATA_DIR", p.dataDir)
	t.Setenv("MUSTER_TOKEN", "")
}

// localProject writes an inventory of n local-transport nodes n01..nNN.
func localProject(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("groups:\n  - name: nodes\n    config: {transport: local}\n    targets:\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "      - n%02d\n", i)
	}
	if err := os.WriteFile(filepath.Join(dir, "inventory.yaml"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// waitJob polls until cond holds for the job, failing after a generous
// limit (a hang guard, not a speed assertion).
func waitJob(t *testing.T, c *api.Client, id int64, what string, cond func(api.JobView) bool) api.JobView {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		j, err := c.Job(context.Background(), id)
		if err == nil && cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %d: %s did not happen: %+v (%v)", id, what, j, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func runsOf(t *testing.T, c *api.Client, id int64) []api.RunView {
	t.Helper()
	runs, err := c.Runs(context.Background(), id, api.RunsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return runs
}

func TestServerJobCommands(t *testing.T) {
	dir := localProject(t, 3)
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)

	code, out, errOut := cli(t, "job", "submit", "command", "echo hi from $MUSTER_NODE", "-t", "nodes", "--watch")
	if code != 0 || !strings.Contains(out, "hi from n02") || !strings.Contains(out, "Successful on 3 targets") {
		t.Fatalf("submit --watch: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "job", "submit", "command", "exit 3", "-t", "n01", "--watch")
	if code != 1 || !strings.Contains(out, "exit code 3") {
		t.Fatalf("failing job: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = cli(t, "job", "show", "1", "--format", "json")
	var shown struct {
		Job         api.JobView      `json:"job"`
		Items       []*muster.Result `json:"items"`
		TargetCount int              `json:"target_count"`
	}
	if code != 0 || jsonUnmarshal(out, &shown) != nil || len(shown.Items) != 3 || shown.TargetCount != 3 ||
		shown.Job.State != muster.JobSucceeded || shown.Items[0].Value["stdout"] == nil {
		t.Fatalf("job show --format json: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "job", "list", "--state", "failed")
	if code != 0 || !strings.Contains(out, "exit 3") || strings.Contains(out, "echo hi") {
		t.Fatalf("job list --state failed: exit %d\n%s", code, out)
	}
	code, out, _ = cli(t, "job", "stats")
	if code != 0 || !strings.Contains(out, "succeeded 3") || !strings.Contains(out, "p99") {
		t.Fatalf("job stats: exit %d\n%s", code, out)
	}

	// Scheduled work can be bumped to now, or cancelled before it starts.
	code, out, errOut = cli(t, "job", "submit", "command", "echo later", "-t", "n01,n02", "--at", "+1h", "--format", "json")
	var sub api.SubmitResponse
	if code != 0 || jsonUnmarshal(out, &sub) != nil || sub.Job.State != muster.JobScheduled {
		t.Fatalf("submit --at: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, out, errOut = cli(t, "job", "cancel", fmt.Sprint(sub.Job.ID)); code != 0 || !strings.Contains(out, "2 waiting run(s)") {
		t.Fatalf("cancel: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = cli(t, "job", "submit", "command", "echo bumped", "-t", "n03", "--at", "+1h", "--format", "json")
	if code != 0 || jsonUnmarshal(out, &sub) != nil {
		t.Fatalf("submit: %d %s", code, out)
	}
	if code, out, errOut = cli(t, "job", "bump", fmt.Sprint(sub.Job.ID)); code != 0 {
		t.Fatalf("bump: exit %d\n%s\n%s", code, out, errOut)
	}
	waitJob(t, srv.client(), sub.Job.ID, "bumped job finishes", func(j api.JobView) bool { return j.State == muster.JobSucceeded })

	// Bad input is refused with exit 2 and a message naming the problem.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"job", "submit", "command", "true", "-t", "nosuch*"}, "nosuch*"},
		{[]string{"job", "submit", "task", "nosuch::task", "-t", "n01"}, "nosuch::task"},
		{[]string{"job", "submit", "command", "true", "-t", "n01", "--at", "tomorrow"}, "--at"},
		{[]string{"job", "show", "abc"}, "not a job id"},
		{[]string{"job", "submit", "command", "true", "-t", "n01", "--on-lease-expiry", "maybe"}, "retry or fail"},
	} {
		code, out, errOut := cli(t, tc.args...)
		if code != 2 || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("%v: exit %d, want 2 naming %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
	if code, _, errOut := cli(t, "job", "show", "999"); code != 1 || !strings.Contains(errOut, "999") {
		t.Errorf("show of a missing job: exit %d %s", code, errOut)
	}

	// Tokens: an operator may submit, a viewer may not.
	code, out, errOut = cli(t, "token", "create", "ci", "--role", "viewer")
	if code != 0 || !strings.HasPrefix(out, "mst_") {
		t.Fatalf("token create: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Setenv("MUSTER_TOKEN", strings.TrimSpace(out))
	if code, _, errOut := cli(t, "job", "submit", "command", "true", "-t", "n01"); code != 2 || !strings.Contains(errOut, "operator") {
		t.Errorf("viewer submit: exit %d %s", code, errOut)
	}
	if code, out, _ := cli(t, "job", "list"); code != 0 || !strings.Contains(out, "echo hi") {
		t.Errorf("viewer list: exit %d %s", code, out)
	}
}

// Secrets given to the server are sealed: neither the database files nor
// the server's log nor any API answer holds them, and the task still gets
// its sensitive parameter.
func TestServerSealsSecrets(t *testing.T) {
	projDir, err := filepath.Abs("testdata/project")
	if err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	srv := startServer(t, projDir, data)
	srv.env(t)
	const pw, tok = "pw-Zq8Vx1-never-stored", "tok-Hq2Lm9-never-stored"
	t.Setenv("MUSTER_SUDO_PASSWORD", pw)
	code, out, errOut := cli(t, "job", "submit", "command", "true", "-t", "localhost", "--run-as", "nobody-such-user", "--watch", "--format", "json")
	if code == 2 {
		t.Fatalf("submit: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Setenv("MUSTER_SUDO_PASSWORD", "")
	code, taskOut, errOut := cli(t, "job", "submit", "task", "demo::secret", "token="+tok, "user=bob", "wait=1", "-t", "localhost", "--watch", "--project", projDir)
	if code != 0 || !strings.Contains(taskOut, "the user is bob") {
		t.Fatalf("task job: exit %d\n%s\n%s", code, taskOut, errOut)
	}
	_, show1, _ := cli(t, "job", "show", "1", "--format", "json")
	_, show2, _ := cli(t, "job", "show", "2", "--format", "json")
	files, _ := filepath.Glob(filepath.Join(data, "muster.db*"))
	if len(files) == 0 {
		t.Fatal("no database files")
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, secret := range []string{pw, tok} {
			if strings.Contains(string(b), secret) {
				t.Errorf("%s holds a secret in plain text", f)
			}
		}
	}
	for name, text := range map[string]string{"log": srv.Log(), "watch": out + errOut + taskOut, "show": show1 + show2} {
		for _, secret := range []string{pw, tok} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s shows a secret:\n%s", name, text)
			}
		}
	}
}

func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }

// selfSigned writes a certificate for 127.0.0.1 and its key as PEM files.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "muster test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for path, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

// With --tls-cert the API is HTTPS only; the client trusts it through
// --ca-file and refuses it without.
func TestServerTLS(t *testing.T) {
	dir := localProject(t, 1)
	certFile, keyFile := selfSigned(t, t.TempDir())
	srv := startServer(t, dir, t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(srv.url, "https://") {
		t.Fatalf("server URL %s is not https", srv.url)
	}
	srv.env(t)
	code, out, errOut := cli(t, "job", "submit", "command", "echo over tls", "-t", "n01", "--watch", "--ca-file", certFile)
	if code != 0 || !strings.Contains(out, "over tls") {
		t.Fatalf("submit over TLS: exit %d\n%s\n%s", code, out, errOut)
	}
	if code, _, errOut := cli(t, "job", "list"); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Errorf("an untrusted certificate was accepted: exit %d %s", code, errOut)
	}
	if code, _, errOut := cli(t, "server", "--tls-cert", certFile); code != 2 || !strings.Contains(errOut, "--tls-key") {
		t.Errorf("--tls-cert without --tls-key: exit %d %s", code, errOut)
	}
}
