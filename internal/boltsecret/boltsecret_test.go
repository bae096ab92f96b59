package boltsecret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func newKeys(t *testing.T) (Config, *Keys) {
	t.Helper()
	c, err := NewConfig(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := CreateKeys(c, false); err != nil {
		t.Fatal(err)
	}
	k, err := LoadKeys(c, true)
	if err != nil {
		t.Fatal(err)
	}
	return c, k
}

func openssl(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("openssl")
	if err != nil {
		t.Fatalf("openssl is needed for the interoperability tests: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

func TestCreateKeysLayout(t *testing.T) {
	c, k := newKeys(t)
	if !strings.HasSuffix(c.PrivateKey, filepath.FromSlash("keys/private_key.pkcs7.pem")) ||
		!strings.HasSuffix(c.PublicKey, filepath.FromSlash("keys/public_key.pkcs7.pem")) {
		t.Fatalf("key paths %q, %q", c.PrivateKey, c.PublicKey)
	}
	st, err := os.Stat(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v, want 0600", st.Mode().Perm())
	}
	if k.Key.N.BitLen() != 2048 {
		t.Errorf("key size %d, want 2048", k.Key.N.BitLen())
	}
	pem, _ := os.ReadFile(c.PrivateKey)
	if !bytes.HasPrefix(pem, []byte("-----BEGIN RSA PRIVATE KEY-----")) {
		t.Errorf("private key is not PKCS#1 PEM: %.40q", pem)
	}
	// OpenSSL reads both files: the certificate is self-signed and holds the key.
	openssl(t, nil, "verify", "-CAfile", c.PublicKey, c.PublicKey)
	mod1 := openssl(t, nil, "x509", "-noout", "-modulus", "-in", c.PublicKey)
	mod2 := openssl(t, nil, "rsa", "-noout", "-modulus", "-in", c.PrivateKey)
	if !bytes.Equal(mod1, mod2) {
		t.Errorf("certificate and key differ: %s vs %s", mod1, mod2)
	}
	if err := CreateKeys(c, false); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second createkeys without force: %v", err)
	}
	if err := CreateKeys(c, true); err != nil {
		t.Errorf("createkeys --force: %v", err)
	}
}

// TestOpenSSLDecryptsMuster: a value muster encrypts is a DER PKCS7
// enveloped-data message that openssl smime decrypts, with AES-256-CBC.
func TestOpenSSLDecryptsMuster(t *testing.T) {
	c, k := newKeys(t)
	for _, plain := range []string{"s3cret", "", "multi\nline ünicode value\x00"} {
		enc, err := Encrypt(k.Cert, []byte(plain))
		if err != nil {
			t.Fatal(err)
		}
		der, err := Parse(enc)
		if err != nil {
			t.Fatal(err)
		}
		got := openssl(t, der, "smime", "-decrypt", "-binary", "-inform", "DER", "-inkey", c.PrivateKey, "-recip", c.PublicKey)
		if string(got) != plain {
			t.Errorf("openssl decrypted %q, want %q", got, plain)
		}
		info := openssl(t, der, "cms", "-cmsout", "-print", "-inform", "DER")
		if !bytes.Contains(info, []byte("aes-256-cbc")) || !bytes.Contains(info, []byte("rsaEncryption")) {
			t.Errorf("envelope is not AES-256-CBC with RSA key transport:\n%s", info)
		}
	}
}

// TestMusterDecryptsOpenSSL: values made by openssl smime and openssl cms
// (the format Bolt and hiera-eyaml write) decrypt with muster's code.
func TestMusterDecryptsOpenSSL(t *testing.T) {
	c, k := newKeys(t)
	cases := []struct {
		name string
		args []string
	}{
		{"smime", []string{"smime", "-encrypt", "-aes256", "-binary", "-outform", "DER", c.PublicKey}},
		{"cms", []string{"cms", "-encrypt", "-aes256", "-binary", "-outform", "DER", "-recip", c.PublicKey}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			der := openssl(t, []byte("p@ss word"), tc.args...)
			b64 := base64.StdEncoding.EncodeToString(der)
			for _, v := range []string{
				Prefix + b64 + Suffix,
				"  " + Prefix + b64[:10] + "\n  " + b64[10:] + Suffix + "\n", // folded YAML block
			} {
				got, err := Decrypt(k.Cert, k.Key, v)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != "p@ss word" {
					t.Errorf("got %q", got)
				}
			}
		})
	}
}

func TestDecryptErrors(t *testing.T) {
	_, k := newKeys(t)
	_, other := newKeys(t)
	enc, err := Encrypt(other.Cert, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, value, want string
		format            bool
	}{
		{"plain", "hello", "expected ENC[PKCS7", true},
		{"other scheme", "ENC[GPG,abc]", "expected ENC[PKCS7", true},
		{"empty", "ENC[PKCS7,]", "empty", true},
		{"bad base64", "ENC[PKCS7,***]", "invalid base64", true},
		{"not pkcs7", "ENC[PKCS7," + base64.StdEncoding.EncodeToString([]byte("junk")) + "]", "not a PKCS7 message", false},
		{"other key pair", enc, "this key pair", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decrypt(k.Cert, k.Key, tc.value)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if errors.Is(err, ErrFormat) != tc.format {
				t.Errorf("errors.Is(ErrFormat) = %v", !tc.format)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	c, err := NewConfig(dir, map[string]any{"private-key": "/abs/priv.pem", "public-key": "rel/pub.pem", "keysize": 4096})
	if err != nil {
		t.Fatal(err)
	}
	if c.PrivateKey != "/abs/priv.pem" || c.PublicKey != filepath.Join(dir, "rel/pub.pem") || c.KeySize != 4096 {
		t.Errorf("config %+v", c)
	}
	for _, bad := range []map[string]any{{"keysize": 1024}, {"keysize": "2048"}, {"private_key": "x"}, {"public-key": 3}} {
		if _, err := NewConfig(dir, bad); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := LoadKeys(c, true); err == nil || !strings.Contains(err.Error(), "public key") {
		t.Errorf("missing keys: %v", err)
	}
}
