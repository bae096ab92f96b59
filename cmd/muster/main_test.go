package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cli runs the CLI in-process and returns its exit code and output.
func cli(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

type jsonDoc struct {
	Items []struct {
		Target string         `json:"target"`
		Action string         `json:"action"`
		Object any            `json:"object"`
		Status string         `json:"status"`
		Value  map[string]any `json:"value"`
	} `json:"items"`
	TargetCount *int `json:"target_count"`
	Elapsed     *int `json:"elapsed_time"`
}

func TestCommandRunJSONShape(t *testing.T) {
	code, out, stderr := cli(t, "command", "run", "echo hi; echo err >&2", "-t", "localhost", "--format", "json")
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, stderr)
	}
	var doc jsonDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if len(doc.Items) != 1 || doc.TargetCount == nil || *doc.TargetCount != 1 || doc.Elapsed == nil {
		t.Fatalf("bad document: %s", out)
	}
	it := doc.Items[0]
	if it.Target != "localhost" || it.Action != "command" || it.Object != "echo hi; echo err >&2" || it.Status != "success" {
		t.Errorf("item = %+v", it)
	}
	for k, want := range map[string]any{"stdout": "hi\n", "stderr": "err\n", "exit_code": float64(0)} {
		if it.Value[k] != want {
			t.Errorf("value[%s] = %#v, want %#v", k, it.Value[k], want)
		}
	}
	if _, ok := it.Value["merged_output"]; !ok {
		t.Error("value has no merged_output")
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"success", []string{"command", "run", "true", "-t", "localhost"}, 0, "Successful on 1 target: localhost"},
		{"target failed", []string{"command", "run", "exit 4", "-t", "localhost"}, 1, "Failed on 1 target: localhost"},
		{"no targets", []string{"command", "run", "true"}, 2, "needs targets"},
		{"unknown flag", []string{"command", "run", "true", "-t", "localhost", "--bogus"}, 2, "unknown flag: --bogus"},
		{"missing argument", []string{"command", "run", "-t", "localhost"}, 2, "needs one COMMAND"},
		{"bad format", []string{"command", "run", "true", "-t", "localhost", "--format", "xml"}, 2, `--format "xml"`},
		{"bad env var", []string{"command", "run", "true", "-t", "localhost", "--env-var", "NOEQUALS"}, 2, "NAME=VALUE"},
		{"bad concurrency", []string{"command", "run", "true", "-t", "localhost", "-c", "0"}, 2, "--concurrency"},
		{"missing script", []string{"script", "run", "/nonexistent.sh", "-t", "localhost"}, 2, "/nonexistent.sh"},
		{"missing upload", []string{"file", "upload", "/nonexistent", "/tmp/x", "-t", "localhost"}, 2, "/nonexistent"},
		{"missing inventory", []string{"inventory", "show", "-i", "/nonexistent/inventory.yaml"}, 2, "/nonexistent/inventory.yaml"},
		{"group needs subcommand", []string{"file"}, 2, "needs a subcommand"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := cli(t, tc.args...)
			if code != tc.want {
				t.Errorf("exit = %d, want %d\nstdout: %s\nstderr: %s", code, tc.want, out, errOut)
			}
			if !strings.Contains(out+errOut, tc.msg) {
				t.Errorf("output lacks %q\nstdout: %s\nstderr: %s", tc.msg, out, errOut)
			}
		})
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := cli(t, args...)
		if code != 0 || !strings.HasPrefix(out, "muster ") {
			t.Errorf("%v: exit %d, out %q", args, code, out)
		}
	}
	code, out, _ := cli(t, "help")
	if code != 0 || !strings.Contains(out, "command") || !strings.Contains(out, "inventory") {
		t.Errorf("help: exit %d, out %q", code, out)
	}
	code, out, _ = cli(t, "command", "run", "--help")
	if code != 0 || !strings.Contains(out, "--concurrency") || !strings.Contains(out, "Examples:") {
		t.Errorf("command run --help: exit %d, out %q", code, out)
	}
}

func TestInventoryShowRedactsSecrets(t *testing.T) {
	dir := t.TempDir()
	inv := `config:
  ssh:
    password: hunter2-secret
    sudo-password: sudo-secret
    private-key:
      key-data: "-----BEGIN OPENSSH PRIVATE KEY----- secret"
groups:
  - name: web
    targets:
      - uri: ssh://deploy:uri-secret@web1.example.com:2222
        name: web1
`
	if err := os.WriteFile(filepath.Join(dir, "inventory.yaml"), []byte(inv), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"human", "json"} {
		code, out, errOut := cli(t, "inventory", "show", "--project", dir, "-t", "web", "--detail", "--format", format)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, errOut)
		}
		for _, secret := range []string{"hunter2-secret", "sudo-secret", "BEGIN OPENSSH", "uri-secret"} {
			if strings.Contains(out+errOut, secret) {
				t.Errorf("%s output shows a secret (%s):\n%s", format, secret, out)
			}
		}
		if !strings.Contains(out, "web1") {
			t.Errorf("%s output lacks web1:\n%s", format, out)
		}
	}
}

func TestFileUploadAndDownloadLocal(t *testing.T) {
	src := filepath.Join(t.TempDir(), "conf")
	if err := os.WriteFile(src, []byte("x=1\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "conf.installed")
	code, out, errOut := cli(t, "file", "upload", src, dest, "-t", "localhost")
	if code != 0 {
		t.Fatalf("upload: exit %d\n%s%s", code, out, errOut)
	}
	fi, err := os.Stat(dest)
	if err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("uploaded file: %v %v", fi, err)
	}
	downloads := t.TempDir()
	code, out, errOut = cli(t, "file", "download", dest, downloads, "-t", "localhost", "--format", "json")
	if code != 0 {
		t.Fatalf("download: exit %d\n%s%s", code, out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(downloads, "localhost", "conf.installed")); err != nil || string(b) != "x=1\n" {
		t.Fatalf("downloaded: %q %v", b, err)
	}
}

func TestStreamPrefixesLines(t *testing.T) {
	code, out, _ := cli(t, "command", "run", "echo one; echo two >&2", "-t", "localhost", "--stream")
	if code != 0 || !strings.Contains(out, "[localhost] out: one") || !strings.Contains(out, "[localhost] err: two") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
}
