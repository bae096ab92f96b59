package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/boltsecret"
)

func TestSecretCommands(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bolt-project.yaml"), []byte("name: p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := cli(t, "secret", "createkeys", "--project", dir)
	if code != 0 || !strings.Contains(out, filepath.Join(dir, "keys", "private_key.pkcs7.pem")) {
		t.Fatalf("createkeys: exit %d\n%s%s", code, out, stderr)
	}
	code, _, stderr = cli(t, "secret", "createkeys", "--project", dir)
	if code != 2 || !strings.Contains(stderr, "--force") {
		t.Errorf("createkeys again: exit %d, %s", code, stderr)
	}
	code, out, stderr = cli(t, "secret", "encrypt", "hunter2", "--project", dir)
	if code != 0 || !strings.HasPrefix(out, "ENC[PKCS7,") {
		t.Fatalf("encrypt: exit %d\n%s%s", code, out, stderr)
	}
	enc := strings.TrimSpace(out)
	code, out, _ = cli(t, "secret", "decrypt", enc, "--project", dir)
	if code != 0 || out != "hunter2\n" {
		t.Errorf("decrypt: exit %d, %q", code, out)
	}
	// Bolt reads muster's values: openssl decrypts the envelope.
	der, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(strings.TrimPrefix(enc, "ENC[PKCS7,"), "]"))
	if err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	cmd := exec.Command("openssl", "smime", "-decrypt", "-binary", "-inform", "DER",
		"-inkey", filepath.Join(keys, "private_key.pkcs7.pem"), "-recip", filepath.Join(keys, "public_key.pkcs7.pem"))
	cmd.Stdin = bytes.NewReader(der)
	if plain, err := cmd.Output(); err != nil || string(plain) != "hunter2" {
		t.Errorf("openssl decrypt: %q, %v", plain, err)
	}
	// plaintext from standard input
	var sout, serr bytes.Buffer
	if code := run([]string{"secret", "encrypt", "--project", dir}, strings.NewReader("from-stdin\n"), &sout, &serr); code != 0 {
		t.Fatalf("encrypt from stdin: exit %d, %s", code, serr.String())
	}
	code, out, _ = cli(t, "secret", "decrypt", sout.String(), "--project", dir)
	if code != 0 || out != "from-stdin\n" {
		t.Errorf("decrypt stdin value: exit %d, %q", code, out)
	}
	for _, bad := range [][]string{
		{"secret", "decrypt", "not-encrypted", "--project", dir},
		{"secret", "encrypt", "x", "--plugin", "vault", "--project", dir},
		{"secret", "encrypt", "x", "--project", t.TempDir()},
	} {
		if code, _, stderr := cli(t, bad...); code != 2 || stderr == "" {
			t.Errorf("%v: exit %d, %s", bad, code, stderr)
		}
	}
}

// TestInventoryShowRedactsPluginSecrets: values from pkcs7 never appear
// in inventory show, human or JSON.
func TestInventoryShowRedactsPluginSecrets(t *testing.T) {
	dir := t.TempDir()
	cfg, err := boltsecret.NewConfig(dir, map[string]any{"private-key": "k/priv.pem", "public-key": "k/pub.pem"})
	if err != nil {
		t.Fatal(err)
	}
	if err := boltsecret.CreateKeys(cfg, false); err != nil {
		t.Fatal(err)
	}
	keys, err := boltsecret.LoadKeys(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := boltsecret.Encrypt(keys.Cert, []byte("topsecret-value"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"muster-project.yaml": "name: p\nplugins:\n  pkcs7:\n    private-key: k/priv.pem\n    public-key: k/pub.pem\n",
		"inventory.yaml": "targets:\n  - name: web1\n    config:\n      ssh:\n        user: {_plugin: pkcs7, encrypted_value: '" + enc + "'}\n" +
			"    vars:\n      token: {_plugin: pkcs7, encrypted_value: '" + enc + "'}\n      plain: visible\n",
	}
	for name, c := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, format := range []string{"human", "json"} {
		code, out, stderr := cli(t, "inventory", "show", "-t", "web1", "--detail", "--format", format, "--project", dir)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, stderr)
		}
		if strings.Contains(out+stderr, "topsecret") || strings.Count(out, "[redacted]") != 2 || !strings.Contains(out, "visible") {
			t.Errorf("%s output:\n%s", format, out)
		}
	}
}
