package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSaveLoadKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	p256, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ed, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "agent.key")
	if err := SaveKey(path, ed); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	got, err := LoadKey(path)
	if err != nil || !publicKeysEqual(got.Public(), ed.Public()) {
		t.Fatalf("LoadKey = %v, %v; want the saved key", got, err)
	}
	// Saving again replaces the key atomically, still 0600.
	if err := SaveKey(path, p256); err != nil {
		t.Fatal(err)
	}
	if got, err = LoadKey(path); err != nil || !publicKeysEqual(got.Public(), p256.Public()) {
		t.Fatalf("LoadKey after replacing = %v, %v", got, err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}

	for _, mode := range []os.FileMode{0o640, 0o604, 0o660, 0o644} {
		chmod(t, path, mode)
		_, err := LoadKey(path)
		if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Errorf("LoadKey of a mode %#o file = %v, want ErrKeyFileMode with chmod 600", mode, err)
		}
	}
	chmod(t, path, 0o400)
	if _, err := LoadKey(path); err != nil {
		t.Errorf("LoadKey of a mode 0400 file: %v", err)
	}

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	if err := SaveKey(filepath.Join(dir, "rsa.key"), rsaKey); err == nil || !strings.Contains(err.Error(), "RSA") {
		t.Errorf("SaveKey(RSA) = %v, want a refusal", err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(rsaKey)
	write(t, filepath.Join(dir, "rsa.key"), string(pemEncode(pemKey, der)), 0o600)
	if _, err := LoadKey(filepath.Join(dir, "rsa.key")); err == nil || !strings.Contains(err.Error(), "RSA key (2048 bits)") {
		t.Errorf("LoadKey(RSA) = %v, want a refusal", err)
	}
	write(t, filepath.Join(dir, "two.key"), string(pemEncode(pemKey, der))+string(pemEncode(pemKey, der)), 0o600)
	if _, err := LoadKey(filepath.Join(dir, "two.key")); err == nil || !strings.Contains(err.Error(), "more than one") {
		t.Errorf("LoadKey(two blocks) = %v", err)
	}
	if _, err := LoadKey(filepath.Join(dir, "missing.key")); err == nil || !strings.Contains(err.Error(), "missing.key") {
		t.Errorf("LoadKey(missing) = %v", err)
	}
}

func TestNewCSR(t *testing.T) {
	ed, _ := NewKey()
	der, err := NewCSR(ed, "web1.example.com")
	if err != nil {
		t.Fatal(err)
	}
	csr, name, err := ParseCSR(der)
	if err != nil || name != "web1.example.com" || csr.DNSNames[0] != name {
		t.Fatalf("ParseCSR = %q, %v", name, err)
	}
	if _, err := NewCSR(ed, "Web1"); !errors.Is(err, ErrInvalidCertname) {
		t.Errorf("NewCSR(Web1) = %v, want ErrInvalidCertname", err)
	}
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := NewCSR(rsaKey, "web1"); err == nil {
		t.Error("NewCSR accepted an RSA key")
	}
	if _, _, err := ParseCSR([]byte("garbage")); err == nil {
		t.Error("ParseCSR accepted garbage")
	}
}

func TestNeedsRenewal(t *testing.T) {
	c := &x509.Certificate{NotBefore: t0, NotAfter: t0.Add(90 * 24 * time.Hour)}
	day := 24 * time.Hour
	if got := RenewAt(c); !got.Equal(t0.Add(60 * day)) {
		t.Fatalf("RenewAt = %v, want %v", got, t0.Add(60*day))
	}
	tests := []struct {
		at   time.Time
		want bool
	}{
		{t0.Add(-time.Hour), false},
		{t0, false},
		{t0.Add(59 * day), false},
		{t0.Add(60*day - time.Second), false},
		{t0.Add(60 * day), true},
		{t0.Add(89 * day), true},
		{t0.Add(100 * day), true},
	}
	for _, tt := range tests {
		if got := NeedsRenewal(c, tt.at); got != tt.want {
			t.Errorf("NeedsRenewal at %v = %v, want %v", tt.at.Sub(t0), got, tt.want)
		}
	}
	// An issued certificate (NotBefore five minutes back) renews at
	// two-thirds of its whole validity.
	a := issue(t, newTestCA(t), "web1", 90*day)
	life := a.cert.NotAfter.Sub(a.cert.NotBefore)
	if NeedsRenewal(a.cert, a.cert.NotBefore.Add(life*2/3-time.Second)) || !NeedsRenewal(a.cert, a.cert.NotBefore.Add(life*2/3)) {
		t.Error("an issued certificate does not renew at two-thirds of its lifetime")
	}
}
