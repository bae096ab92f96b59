package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/apply"
)

// needPuppet skips a test on a machine without Puppet, or fails it when
// MUSTER_TEST_REQUIRE_PUPPET=1.
func needPuppet(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("puppet"); err != nil {
		if os.Getenv("MUSTER_TEST_REQUIRE_PUPPET") == "1" {
			t.Fatal("puppet is not installed, and MUSTER_TEST_REQUIRE_PUPPET=1")
		}
		t.Skip("puppet is not installed (apt-get install puppet)")
	}
}

func TestApplyUsage(t *testing.T) {
	dir := t.TempDir()
	m := filepath.Join(dir, "site.pp")
	if err := os.WriteFile(m, []byte("notify { 'x': }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		msg  string
	}{
		{"nothing to apply", []string{"apply", "-t", "localhost"}, "needs a MANIFEST file, or -e CODE"},
		{"file and code", []string{"apply", m, "-e", "notify { 'y': }", "-t", "localhost"}, "either a MANIFEST file or -e CODE"},
		{"empty code", []string{"apply", "-e", " ", "-t", "localhost"}, "the Puppet code is empty"},
		{"two files", []string{"apply", m, m, "-t", "localhost"}, "takes one MANIFEST file"},
		{"missing file", []string{"apply", filepath.Join(dir, "nope.pp"), "-t", "localhost"}, "nope.pp"},
		{"no targets", []string{"apply", m}, "needs targets"},
		{"install without prep", []string{"apply", m, "--install", "-t", "localhost"}, "--install belongs to 'muster apply prep'"},
		{"prep with a manifest", []string{"apply", "prep", m, "-t", "localhost"}, "takes no manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := cli(t, c.args...)
			if code != exitUsage || !strings.Contains(errOut, c.msg) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut, c.msg)
			}
		})
	}
}

// muster apply on this machine with real Puppet: a change, the same
// again, --noop, -e, a failing resource and code that does not compile.
func TestApplyLocalCLI(t *testing.T) {
	needPuppet(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "motd")
	m := filepath.Join(dir, "site.pp")
	if err := os.WriteFile(m, []byte("file { "+apply.Quote(file)+": content => 'v1' }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(wantCode int, args ...string) jsonDoc {
		t.Helper()
		code, out, errOut := cli(t, append(args, "-t", "localhost", "--format", "json")...)
		if code != wantCode {
			t.Fatalf("%v: exit %d, want %d\n%s\n%s", args, code, wantCode, out, errOut)
		}
		doc := decode(t, out)
		if len(doc.Items) != 1 || doc.Items[0].Action != "apply" {
			t.Fatalf("%v: items %+v", args, doc.Items)
		}
		return doc
	}
	status := func(doc jsonDoc) string {
		rep, _ := doc.Items[0].Value["report"].(map[string]any)
		s, _ := rep["status"].(string)
		return s
	}

	doc := run(0, "apply", m)
	if status(doc) != "changed" || doc.Items[0].Object != m || doc.Items[0].Status != "success" {
		t.Fatalf("first apply: %+v", doc.Items[0])
	}
	if b, _ := os.ReadFile(file); string(b) != "v1" {
		t.Fatalf("file holds %q", b)
	}
	if doc = run(0, "apply", m); status(doc) != "unchanged" {
		t.Fatalf("second apply: %s", status(doc))
	}
	code := "file { " + apply.Quote(file) + ": content => 'v2' }"
	if doc = run(0, "apply", "-e", code, "--noop"); status(doc) != "unchanged" || doc.Items[0].Object != nil {
		t.Fatalf("noop apply: %s, object %v", status(doc), doc.Items[0].Object)
	}
	if b, _ := os.ReadFile(file); string(b) != "v1" {
		t.Fatalf("--noop changed the file: %q", b)
	}
	if doc = run(0, "apply", "-e", code); status(doc) != "changed" {
		t.Fatalf("-e apply: %s", status(doc))
	}
	if b, _ := os.ReadFile(file); string(b) != "v2" {
		t.Fatalf("-e did not change the file: %q", b)
	}

	doc = run(1, "apply", "-e", "exec { 'false': path => '/bin:/usr/bin' }")
	e, _ := doc.Items[0].Value["_error"].(map[string]any)
	if status(doc) != "failed" || e["kind"] != apply.KindResourceFailure || !strings.Contains(e["msg"].(string), "Exec[false]") {
		t.Fatalf("failing apply: status %s error %v", status(doc), e)
	}
	doc = run(1, "apply", "-e", "file { 'x' ")
	e, _ = doc.Items[0].Value["_error"].(map[string]any)
	if e["kind"] != apply.KindApply || !strings.Contains(e["msg"].(string), "Syntax error") {
		t.Fatalf("syntax error: %v", e)
	}

	// Human output: Bolt's metrics line.
	code2, out, _ := cli(t, "apply", "-e", "notify { 'hi': }", "-t", "localhost")
	if code2 != 0 || !strings.Contains(out, "changed: 1, failed: 0, unchanged: ") {
		t.Fatalf("human output (exit %d):\n%s", code2, out)
	}
}

// Over real sshd, with the project's modules: each target applies a class
// from the module path, which travels with the manifest; apply prep finds
// Puppet on each.
func TestApplySSHFleet(t *testing.T) {
	needPuppet(t)
	_, inv := fleet(t, 2, "")
	mods := t.TempDir()
	if err := os.MkdirAll(filepath.Join(mods, "greet", "manifests"), 0o755); err != nil {
		t.Fatal(err)
	}
	cls := "class greet(String $who) {\n  notify { \"hello ${who}\": }\n}\n"
	if err := os.WriteFile(filepath.Join(mods, "greet", "manifests", "init.pp"), []byte(cls), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "apply", "-e", "class { 'greet': who => 'fleet' }", "-t", "fleet", "-i", inv, "-m", mods, "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	doc := decode(t, out)
	if len(doc.Items) != 2 {
		t.Fatalf("%d items, want 2", len(doc.Items))
	}
	for _, it := range doc.Items {
		rep, _ := it.Value["report"].(map[string]any)
		st, _ := rep["resource_statuses"].(map[string]any)
		if it.Status != "success" || rep["status"] != "changed" || st["Notify[hello fleet]"] == nil {
			t.Errorf("%s: status %s report status %v resources %d", it.Target, it.Status, rep["status"], len(st))
		}
	}

	code, out, errOut = cli(t, "apply", "prep", "-t", "fleet", "-i", inv, "--format", "json")
	if code != 0 {
		t.Fatalf("prep: exit %d\n%s\n%s", code, out, errOut)
	}
	for _, it := range decode(t, out).Items {
		if it.Action != "apply_prep" || it.Value["installed"] != false || it.Value["version"] == "" {
			t.Errorf("prep on %s: %+v", it.Target, it)
		}
	}
}
