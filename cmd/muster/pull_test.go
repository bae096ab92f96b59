package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/pki"
)

var agentsLine = regexp.MustCompile(`msg="listening for agents \(mTLS\)" agents=https://(\S+) ca_fingerprint=(\S+)`)

// pullProject writes a project whose pull.yaml runs a command that logs
// each run to logFile and exits 2 ("changed", a success code), and makes
// a change to watched force a run.
func pullProject(t *testing.T, logFile, watched string) string {
	t.Helper()
	dir := localProject(t, 1)
	cfg := fmt.Sprintf(`interval: 10m
backends:
  - {name: local, max_running: 10}
runs:
  - command: 'echo "run $MUSTER_RUN_ID $MUSTER_NODE $MUSTER_BACKEND" >> %s; exit 2'
    success_codes: [0, 2]
    watch: [%s]
`, logFile, watched)
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// agentsOf starts a server with an agent listener and returns it with the
// listener's address and the CA fingerprint.
func agentsOf(t *testing.T, dir string, args ...string) (*serverProc, string, string) {
	t.Helper()
	return agentsIn(t, dir, t.TempDir(), args...)
}

// agentsIn is agentsOf with the server's data directory.
func agentsIn(t *testing.T, dir, data string, args ...string) (*serverProc, string, string) {
	t.Helper()
	srv := startServer(t, dir, data, append([]string{"--agent-listen", "127.0.0.1:0"}, args...)...)
	var m []string
	eventually(t, "the agent listener starts", func() bool {
		m = agentsLine.FindStringSubmatch(srv.Log())
		return m != nil
	})
	return srv, m[1], m[2]
}

// startAgent starts a `muster agent` process with long polls of 5
// minutes: a watched file's change or a run asked for must cut them short.
func startAgent(t *testing.T, args ...string) *child {
	t.Helper()
	return startChild(t, "agent", true, nil, append([]string{"agent", "--wait", "5m"}, args...)...)
}

func runsIn(t *testing.T, logFile, node string) int {
	b, _ := os.ReadFile(logFile)
	return strings.Count(string(b), " "+node+" local\n")
}

// Pull mode end to end: two agents (separate processes) enroll with a
// token, run on their first check-in, run again at once when a watched file
// changes, show in 'muster node list'; an agent outside the token's
// autosign names waits for 'muster cert sign'; a wrong CA fingerprint is
// refused; a node cannot report another node's run; a revoked
// certificate's next handshake is refused.
func TestPullAgentsEndToEnd(t *testing.T) {
	work := t.TempDir()
	logFile, watched := filepath.Join(work, "runs.log"), filepath.Join(work, "sudoers")
	if err := os.WriteFile(watched, []byte("root ALL=(ALL) ALL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, addr, fp := agentsOf(t, pullProject(t, logFile, watched))
	srv.env(t)
	ctx := context.Background()
	tok, err := srv.client().CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "lab", Uses: 5, Certnames: "agent*.test"})
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	for _, name := range []string{"agent1.test", "agent2.test"} {
		dirs[name] = t.TempDir()
		startAgent(t, "--server", addr, "--data-dir", dirs[name], "--certname", name, "--enroll-token", tok.Secret, "--ca-fingerprint", fp,
			"--facts-command", `echo '{"role":"`+strings.TrimSuffix(name, ".test")+`"}'`)
	}
	for _, name := range []string{"agent1.test", "agent2.test"} {
		eventually(t, name+" runs on its first check-in", func() bool { return runsIn(t, logFile, name) >= 1 })
	}
	// Asked on their first check-in, the agents uploaded their facts:
	// their own, and their facts command's.
	for _, name := range []string{"agent1.test", "agent2.test"} {
		eventually(t, name+" uploads its facts", func() bool {
			n, err := srv.client().Node(ctx, name)
			return err == nil && !n.FactsAt.IsZero()
		})
		code, out, errOut := cli(t, "node", "facts", name, "role", "os.family", "muster.certname")
		want := fmt.Sprintf("muster.certname = %s\nos.family = Debian\nrole = %s\n", name, strings.TrimSuffix(name, ".test"))
		if code != 0 || out != want {
			t.Errorf("node facts %s: exit %d\n%s%s\nwant\n%s", name, code, out, errOut, want)
		}
	}
	if code, _, errOut := cli(t, "node", "facts", "agent1.test", "no.such.fact"); code != 2 || !strings.Contains(errOut, `no fact "no.such.fact"`) {
		t.Errorf("an unknown fact: exit %d: %s", code, errOut)
	}

	// A watched file changes: both agents run again, without waiting for
	// their slots.
	before := runsIn(t, logFile, "agent1.test")
	if err := os.WriteFile(watched, []byte("root ALL=(ALL) NOPASSWD: ALL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a change to a watched file forces a run", func() bool { return runsIn(t, logFile, "agent1.test") > before })

	code, out, errOut := cli(t, "node", "list")
	if code != 0 || !strings.Contains(out, "agent1.test") || !strings.Contains(out, "agent2.test") || !strings.Contains(out, "signed") {
		t.Errorf("node list: exit %d\n%s%s", code, out, errOut)
	}

	// Outside the autosign names: pending until signed. The agent is
	// stopped meanwhile, and started again without its token: its key's
	// request is signed, and it fetches its certificate.
	otherDir := t.TempDir()
	other := startAgent(t, "--server", addr, "--data-dir", otherDir, "--certname", "other.test", "--enroll-token", tok.Secret, "--ca-fingerprint", fp)
	eventually(t, "other.test's request waits", func() bool {
		n, err := srv.client().Node(ctx, "other.test")
		return err == nil && n.State == muster.NodePending
	})
	_ = other.cmd.Process.Kill()
	<-other.done
	if code, out, errOut := cli(t, "cert", "sign", "other.test"); code != 0 {
		t.Fatalf("cert sign: exit %d\n%s%s", code, out, errOut)
	}
	startAgent(t, "--server", addr, "--data-dir", otherDir, "--certname", "other.test")
	eventually(t, "other.test runs once signed", func() bool { return runsIn(t, logFile, "other.test") >= 1 })
	// An agent whose key the server never saw, without a token: told what to do.
	stray := startAgent(t, "--server", addr, "--data-dir", t.TempDir(), "--certname", "stray.test", "--ca-fingerprint", fp)
	select {
	case <-stray.done:
	case <-time.After(60 * time.Second):
		t.Fatal("an agent without a token or a request did not give up")
	}
	if !strings.Contains(stray.Log(), "pass --enroll-token") {
		t.Errorf("an agent without a token or a request:\n%s", stray.Log())
	}

	// A wrong CA fingerprint: the agent refuses the server.
	bad := startAgent(t, "--server", addr, "--data-dir", t.TempDir(), "--certname", "agent9.test", "--enroll-token", tok.Secret,
		"--ca-fingerprint", "sha256:"+strings.Repeat("ab", 32))
	select {
	case <-bad.done:
	case <-time.After(60 * time.Second):
		t.Fatal("an agent facing a wrong CA fingerprint did not give up")
	}
	if bad.exit == nil || !strings.Contains(bad.Log(), "fingerprint") {
		t.Errorf("wrong fingerprint: exit %v\n%s", bad.exit, bad.Log())
	}
	if _, err := srv.client().Node(ctx, "agent9.test"); err == nil {
		t.Error("the refused agent was recorded")
	}

	// agent1 may not report agent2's run.
	client1 := agentTLS(t, dirs["agent1.test"])
	n2, err := srv.client().Node(ctx, "agent2.test")
	if err != nil || n2.LastRunID == 0 {
		t.Fatalf("agent2's last run: %+v %v", n2, err)
	}
	status, body := postAgent(t, client1, addr, checkin.PathReport, checkin.Report{Version: checkin.Version, RunID: n2.LastRunID, Attempt: 1, ExitCode: 0})
	if status != http.StatusForbidden || !strings.Contains(body, "not a run of agent1.test") {
		t.Errorf("agent1 reporting agent2's run: %d %s", status, body)
	}

	// Revoked: the next handshake is refused.
	if code, out, errOut := cli(t, "cert", "revoke", "agent2.test"); code != 0 {
		t.Fatalf("cert revoke: exit %d\n%s%s", code, out, errOut)
	}
	client2 := agentTLS(t, dirs["agent2.test"])
	if status, body := postAgent(t, client2, addr, checkin.PathCheckIn, checkin.CheckInRequest{Version: checkin.Version}); status != 0 {
		t.Errorf("a revoked certificate checked in: %d %s", status, body)
	}
}

// agentTLS is an HTTPS client with the agent's own key and certificate.
func agentTLS(t *testing.T, dir string) *http.Client {
	t.Helper()
	key, err := pki.LoadKey(filepath.Join(dir, "key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.LoadCert(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCert(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	tc, err := pki.TLSCertificate(cert.Raw, key)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := pki.ClientTLSConfig(ca.Raw, tc)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 30 * time.Second}
}

// postAgent posts to the agent listener; status 0 means the connection
// itself was refused.
func postAgent(t *testing.T, c *http.Client, addr, path string, body any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := c.Post("https://"+addr+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	_, _ = out.ReadFrom(resp.Body)
	return resp.StatusCode, out.String()
}

// kill -9 the server while an agent runs: the agent spools its report and
// sends it once the server is back, and the run ends exactly once. kill
// -9 the agent while it runs: its next start reports the run as failed,
// instead of leaving it to its lease's expiry.
func TestPullSurvivesKill9(t *testing.T) {
	work := t.TempDir()
	logFile := filepath.Join(work, "runs.log")
	dir := localProject(t, 1)
	cfg := fmt.Sprintf(`interval: 10m
backends:
  - {name: local, max_running: 10}
runs:
  - command: 'echo "start $MUSTER_RUN_ID" >> %[1]s; sleep 3; echo "end $MUSTER_RUN_ID" >> %[1]s'
`, logFile)
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	data := t.TempDir()
	args := []string{"--agent-listen", port}
	srv := startServer(t, dir, data, args...)
	var fp string
	eventually(t, "the agent listener starts", func() bool {
		m := agentsLine.FindStringSubmatch(srv.Log())
		if m != nil {
			fp = m[2]
		}
		return m != nil
	})
	ctx := context.Background()
	tok, err := srv.client().CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "k", Uses: 1, Certnames: "k1.test"})
	if err != nil {
		t.Fatal(err)
	}
	agentDir := t.TempDir()
	agentArgs := []string{"--server", port, "--data-dir", agentDir, "--certname", "k1.test", "--enroll-token", tok.Secret, "--ca-fingerprint", fp}
	ag := startAgent(t, agentArgs...)
	logHas := func(s string) func() bool {
		return func() bool { b, _ := os.ReadFile(logFile); return strings.Contains(string(b), s) }
	}
	eventually(t, "the first run starts", logHas("start 1\n"))
	if err := srv.stop(syscall.SIGKILL); err == nil {
		t.Fatal("kill -9 did not kill")
	}
	eventually(t, "the run ends while the server is down", logHas("end 1\n"))
	srv = startServer(t, dir, data, args...)
	c := srv.client()
	eventually(t, "the spooled report arrives", func() bool {
		r, err := c.Runs(ctx, 1, api.RunsOptions{})
		return err == nil && len(r) == 1 && r[0].State.Final()
	})
	runs, err := c.Runs(ctx, 1, api.RunsOptions{})
	if err != nil || runs[0].State != muster.RunSucceeded || runs[0].Attempt != 1 {
		t.Fatalf("run 1 after the server's kill -9: %+v %v", runs, err)
	}

	// The agent dies mid-run; its next start reports the run.
	if code, out, errOut := cliWith(t, srv, "node", "run", "k1.test"); code != 0 {
		t.Fatalf("node run: exit %d\n%s%s", code, out, errOut)
	}
	var second int64
	eventually(t, "a second run starts", func() bool {
		n, err := c.Node(ctx, "k1.test")
		second = n.LastRunID
		return err == nil && n.LastRunID > 1 && logHas(fmt.Sprintf("start %d\n", n.LastRunID))()
	})
	_ = ag.cmd.Process.Kill()
	<-ag.done
	startAgent(t, agentArgs...)
	eventually(t, "the interrupted run is reported", func() bool {
		n, err := c.Node(ctx, "k1.test")
		if err != nil {
			return false
		}
		r, err := c.Runs(ctx, jobOfRun(t, c, second), api.RunsOptions{})
		return err == nil && len(r) > 0 && r[0].State == muster.RunFailed && strings.Contains(r[0].Error, "agent stopped during the run") && n.LastRunID >= second
	})
	if b, _ := os.ReadFile(logFile); strings.Contains(string(b), fmt.Sprintf("end %d\n", second)) {
		t.Errorf("the killed agent's work went on:\n%s", b)
	}
	if n := strings.Count(srv.Log(), "pull run reported"); n < 1 {
		t.Errorf("reports after the restart: %d", n)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// cliWith runs the CLI against s.
func cliWith(t *testing.T, s *serverProc, args ...string) (int, string, string) {
	t.Helper()
	s.env(t)
	return cli(t, args...)
}

// jobOfRun finds the job of a run by listing the jobs.
func jobOfRun(t *testing.T, c *api.Client, run int64) int64 {
	t.Helper()
	jobs, err := c.ListJobs(context.Background(), api.ListJobsOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs.Jobs {
		rs, err := c.Runs(context.Background(), j.ID, api.RunsOptions{})
		if err != nil {
			continue
		}
		for _, r := range rs {
			if r.ID == run {
				return j.ID
			}
		}
	}
	return 0
}

// A real Puppet run as the pull run's command: `puppet apply` with
// --detailed-exitcodes, where 2 means "changed" and counts as success.
// (The README shows `puppet agent -t` against a backend the same way.)
func TestPullRunsPuppetApply(t *testing.T) {
	if _, err := exec.LookPath("puppet"); err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_PUPPET") != "" {
			t.Fatal("puppet is not installed (scripts/apt-install.sh puppet)")
		}
		t.Skip("puppet is not installed")
	}
	work := t.TempDir()
	target := filepath.Join(work, "motd")
	dir := localProject(t, 1)
	cfg := fmt.Sprintf(`interval: 1h
backends:
  - {name: puppet-local, max_running: 2}
runs:
  - command: >-
      puppet apply --detailed-exitcodes --color=false
      --vardir %[1]s/var --confdir %[1]s/etc --codedir %[1]s/code
      -e "file { '%[2]s': content => \"managed on ${MUSTER_NODE} via ${MUSTER_BACKEND}\n\" }"
    success_codes: [0, 2]
    timeout: 5m
`, work, target)
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, addr, fp := agentsOf(t, dir)
	srv.env(t)
	ctx := context.Background()
	tok, err := srv.client().CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "puppet", Uses: 1, Certnames: "*.puppet.test"})
	if err != nil {
		t.Fatal(err)
	}
	startAgent(t, "--server", addr, "--data-dir", t.TempDir(), "--certname", "p1.puppet.test", "--enroll-token", tok.Secret, "--ca-fingerprint", fp)
	var last api.RunView
	eventually(t, "puppet's first run ends", func() bool {
		n, err := srv.client().Node(ctx, "p1.puppet.test")
		if err != nil || n.LastRunID == 0 {
			return false
		}
		runs, err := srv.client().Runs(ctx, jobOfRun(t, srv.client(), n.LastRunID), api.RunsOptions{})
		if err != nil || len(runs) == 0 || !runs[0].State.Final() {
			return false
		}
		last = runs[0]
		return true
	})
	if last.State != muster.RunSucceeded || last.ExitCode != 2 {
		t.Fatalf("puppet apply run: %+v", last)
	}
	if got := must(os.ReadFile(target)); got != "managed on p1.puppet.test via puppet-local\n" {
		t.Errorf("puppet wrote %q", got)
	}
	// Tampered with, then enforced again at the operator's word: changed
	// again (exit 2), back to the catalog's content.
	if err := os.WriteFile(target, []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := cli(t, "node", "run", "p1.puppet.test"); code != 0 {
		t.Fatalf("node run: exit %d\n%s%s", code, out, errOut)
	}
	eventually(t, "puppet enforces the file again", func() bool {
		return must(os.ReadFile(target)) == "managed on p1.puppet.test via puppet-local\n"
	})
}

// A pull run that is a task: pull.yaml names a task from the agent's own
// module path (--modulepath) with params, or a built-in module's task;
// the agent runs it through the engine, and the run's result carries the
// task's JSON.
func TestPullRunsATask(t *testing.T) {
	mods := t.TempDir()
	taskDir := filepath.Join(mods, "site", "tasks")
	if err := os.MkdirAll(taskDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(taskDir, "hello.sh"),
		[]byte("#!/bin/sh\necho \"{\\\"greeting\\\": \\\"hello $PT_name on $MUSTER_NODE\\\"}\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(taskDir, "hello.json"),
		[]byte(`{"parameters": {"name": {"type": "String[1]"}}, "input_method": "environment"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := localProject(t, 1)
	cfg := `interval: 1h
backends:
  - {name: local, max_running: 5}
runs:
  - match: {glob: "t1*"}
    task: site::hello
    params: {name: muster}
  - match: {glob: "t2*"}
    task: package
    params: {action: status, name: coreutils}
`
	if err := os.WriteFile(filepath.Join(dir, "pull.yaml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	srv, addr, fp := agentsOf(t, dir)
	srv.env(t)
	ctx := context.Background()
	tok, err := srv.client().CreateEnrollToken(ctx, api.EnrollTokenRequest{Name: "tasks", Uses: 2, Certnames: "*.task.test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"t1.task.test", "t2.task.test"} {
		startAgent(t, "--server", addr, "--data-dir", t.TempDir(), "--certname", name, "--enroll-token", tok.Secret,
			"--ca-fingerprint", fp, "--modulepath", mods)
	}
	lastRun := func(name string) (api.RunView, bool) {
		n, err := srv.client().Node(ctx, name)
		if err != nil || n.LastRunID == 0 {
			return api.RunView{}, false
		}
		runs, err := srv.client().Runs(ctx, jobOfRun(t, srv.client(), n.LastRunID), api.RunsOptions{})
		if err != nil || len(runs) == 0 || !runs[0].State.Final() {
			return api.RunView{}, false
		}
		return runs[0], true
	}
	for name, want := range map[string]string{
		"t1.task.test": `{"greeting": "hello muster on t1.task.test"}`,
		"t2.task.test": `"status":"installed"`,
	} {
		var r api.RunView
		eventually(t, name+"'s task run ends", func() bool {
			var ok bool
			r, ok = lastRun(name)
			return ok
		})
		out, _ := r.Value["stdout"].(string)
		if r.State != muster.RunSucceeded || !strings.Contains(out, want) {
			t.Errorf("%s: %s, stdout %q, error %q; want %s", name, r.State, out, r.Error, want)
		}
	}
}
