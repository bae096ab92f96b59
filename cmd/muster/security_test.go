package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
)

// tokenClient creates a token of role on s and returns a client using it.
func tokenClient(t *testing.T, s *serverProc, name string, role muster.Role) *api.Client {
	t.Helper()
	tok, err := s.client().CreateToken(context.Background(), name, role)
	if err != nil {
		t.Fatal(err)
	}
	c, err := api.NewClient(s.url, tok.Secret)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statusOf(err error) int {
	var ae *api.APIError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// The API never reads a file named by a target spec: "@path" is the
// command line's convenience, expanded by the client. Neither the job's
// targets nor the error may carry the file's content.
func TestServerRefusesFileTargets(t *testing.T) {
	dir := localProject(t, 2)
	data := t.TempDir()
	srv := startServer(t, dir, data)
	op := tokenClient(t, srv, "ops", muster.RoleOperator)
	admin, err := os.ReadFile(filepath.Join(data, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(admin))
	for _, spec := range []string{"@" + filepath.Join(data, "admin.token"), "n01,@/etc/hostname", "@/etc/shadow"} {
		_, err := op.Submit(context.Background(), api.SubmitRequest{Kind: muster.JobCommand,
			Targets: api.Targets{Spec: spec}, Spec: muster.JobSpec{Command: "true"}})
		if statusOf(err) != 400 || !strings.Contains(err.Error(), "client-side file reference") {
			t.Errorf("targets %q: got %v, want a 400 refusing the file reference", spec, err)
		}
		if err != nil && (strings.Contains(err.Error(), secret) || strings.Contains(err.Error(), "root:")) {
			t.Errorf("targets %q: the error carries a server file's content: %v", spec, err)
		}
	}
	jobs, err := op.ListJobs(context.Background(), api.ListJobsOptions{})
	if err != nil || len(jobs.Jobs) != 0 {
		t.Errorf("jobs after the refused submissions: %+v, %v", jobs, err)
	}

	// The CLI reads the file itself and sends its names.
	list := filepath.Join(t.TempDir(), "targets.txt")
	if err := os.WriteFile(list, []byte("n01 # the first\nn02\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.env(t)
	code, out, errOut := cli(t, "job", "submit", "command", "true", "-t", "@"+list, "--watch")
	if code != 0 || !strings.Contains(out, "on 2 target(s)") {
		t.Errorf("job submit -t @file: exit %d\n%s%s", code, out, errOut)
	}
}

// Jobs on the server's own machine run as the server's user: refused for
// everyone unless the server allows them, and then for admins only. The
// refusal names the flag, and a plan job cannot reach such a target from
// inside either.
func TestServerLocalTargets(t *testing.T) {
	dir := localProject(t, 1)
	mod := filepath.Join(dir, "modules", "m", "plans")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "sneaky.yaml"), []byte(`parameters:
  targets: {type: TargetSpec}
steps:
  - command: id
    targets: localhost
`), 0o644); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "x")
	command := "id > " + marker
	submitAs := func(c *api.Client, spec string) error {
		_, err := c.Submit(context.Background(), api.SubmitRequest{Kind: muster.JobCommand,
			Targets: api.Targets{Spec: spec}, Spec: muster.JobSpec{Command: command}})
		return err
	}

	strict := startServer(t, dir, t.TempDir(), "--allow-local-targets=false")
	for _, spec := range []string{"local://", "localhost", "n01"} {
		for _, c := range []*api.Client{strict.client(), tokenClient(t, strict, "op-"+fmt.Sprint(len(spec)), muster.RoleOperator)} {
			err := submitAs(c, spec)
			if statusOf(err) != 403 || !strings.Contains(err.Error(), "--allow-local-targets") {
				t.Errorf("server without the flag, targets %q: got %v, want a 403 naming --allow-local-targets", spec, err)
			}
		}
	}

	allowing := startServer(t, dir, t.TempDir(), "--allow-local-targets")
	op := tokenClient(t, allowing, "op", muster.RoleOperator)
	if err := submitAs(op, "local://"); statusOf(err) != 403 || !strings.Contains(err.Error(), "only admin tokens") {
		t.Errorf("operator on a server with the flag: got %v, want a 403 for non-admins", err)
	}
	// A plan job an operator may submit on a remote-looking node cannot
	// reach localhost from inside.
	res, err := op.Submit(context.Background(), api.SubmitRequest{Kind: muster.JobPlan,
		Targets: api.Targets{Spec: "ssh://nowhere.invalid"}, Spec: muster.JobSpec{Plan: "m::sneaky"}})
	if err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, allowing.client(), res.Job.ID, "the plan job ends", func(j api.JobView) bool { return j.Finished })
	runs := runsOf(t, allowing.client(), j.ID)
	if len(runs) != 1 || runs[0].State != muster.RunFailed || !strings.Contains(runs[0].Error, "only admin tokens") {
		t.Errorf("operator's plan reaching localhost: %+v", runs)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("a refused job ran on the server's machine")
	}
	// An admin on a server that allows it may.
	if err := submitAs(allowing.client(), "local://"); err != nil {
		t.Fatalf("admin with --allow-local-targets: %v", err)
	}
}

// Limits on what one job and one token may ask of the server.
func TestServerJobLimits(t *testing.T) {
	dir := localProject(t, 5)
	srv := startServer(t, dir, t.TempDir(), "--max-targets-per-job", "3", "--max-jobs-per-minute", "2")
	c := srv.client()
	_, err := c.Submit(context.Background(), api.SubmitRequest{Kind: muster.JobCommand,
		Targets: api.Targets{Spec: "nodes"}, Spec: muster.JobSpec{Command: "true"}})
	if statusOf(err) != 400 || !strings.Contains(err.Error(), "--max-targets-per-job") {
		t.Fatalf("5 targets with --max-targets-per-job 3: %v", err)
	}
	for i := range 3 {
		_, err := c.Submit(context.Background(), api.SubmitRequest{Kind: muster.JobCommand,
			Targets: api.Targets{Spec: "n01"}, Spec: muster.JobSpec{Command: fmt.Sprint("echo ", i)}})
		switch {
		case i < 2 && err != nil:
			t.Fatalf("job %d: %v", i, err)
		case i == 2 && (statusOf(err) != 429 || !strings.Contains(err.Error(), "--max-jobs-per-minute")):
			t.Fatalf("third job in a minute with --max-jobs-per-minute 2: %v", err)
		}
	}
	m := metricsOf(t, srv)
	for _, want := range []string{`muster_api_limit{limit="targets_per_job"} 3`, `muster_api_limit{limit="jobs_per_minute"} 2`,
		`muster_api_limit_refusals_total{limit="targets_per_job"} 1`, `muster_api_limit_refusals_total{limit="jobs_per_minute"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// A plan job's parameters are checked at submit, as a task job's are.
func TestServerChecksPlanParametersAtSubmit(t *testing.T) {
	dir := localProject(t, 1)
	mod := filepath.Join(dir, "modules", "m", "plans")
	if err := os.MkdirAll(mod, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mod, "p.yaml"), []byte("parameters:\n  targets: {type: TargetSpec}\n  version: {type: String}\nsteps:\n  - message: \"v${version}\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, dir, t.TempDir())
	srv.env(t)
	code, out, errOut := cli(t, "job", "submit", "plan", "m::p", "bogus=1", "-t", "n01", "--project", dir)
	if code != 2 || !strings.Contains(out+errOut, "bogus") {
		t.Errorf("bogus=1: exit %d, want 2 naming the parameter\n%s%s", code, out, errOut)
	}
	code, out, errOut = cli(t, "job", "submit", "plan", "m::p", "version=1.0", "-t", "n01", "--project", dir, "--watch")
	if code != 0 {
		t.Errorf("version=1.0: exit %d\n%s%s", code, out, errOut)
	}
}

// job submit says that the server resolved the targets with its own
// inventory, and warns when the project here has another one.
func TestJobSubmitSaysWhereTargetsResolve(t *testing.T) {
	serverDir := localProject(t, 1)
	srv := startServer(t, serverDir, t.TempDir())
	srv.env(t)
	here := localProject(t, 3)
	code, out, errOut := cli(t, "job", "submit", "command", "true", "-t", "n01", "--project", here)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if want := "with its inventory " + filepath.Join(serverDir, "inventory.yaml"); !strings.Contains(out, want) {
		t.Errorf("output lacks %q:\n%s", want, out)
	}
	if !strings.Contains(errOut, "Warning: this project's inventory "+filepath.Join(here, "inventory.yaml")) {
		t.Errorf("no warning about the local inventory the server did not use:\n%s", errOut)
	}
	code, out, errOut = cli(t, "job", "submit", "command", "true", "-t", "n01", "--project", serverDir)
	if code != 0 || strings.Contains(errOut, "Warning") {
		t.Errorf("from the server's own project: exit %d, stderr %s", code, errOut)
	}
	_ = out
}
