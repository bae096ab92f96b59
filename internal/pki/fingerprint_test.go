package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func TestFingerprintFormats(t *testing.T) {
	der := []byte("not really a certificate, but any bytes have a digest")
	sum := sha256.Sum256(der)
	plain := hex.EncodeToString(sum[:])
	var pairs []string
	for i := 0; i < len(plain); i += 2 {
		pairs = append(pairs, plain[i:i+2])
	}
	colons := strings.Join(pairs, ":")

	fp := FingerprintOf(der)
	if fp != "sha256:"+plain {
		t.Fatalf("FingerprintOf = %q, want sha256:%s", fp, plain)
	}
	accepted := []string{
		fp,
		plain,
		strings.ToUpper(plain),
		"SHA256:" + strings.ToUpper(plain),
		"sha256:" + colons,
		strings.ToUpper(colons),
		"sha256 Fingerprint=" + strings.ToUpper(colons), // openssl x509 -fingerprint -sha256
		"  " + fp + "\n",
	}
	for _, s := range accepted {
		got, err := ParseFingerprint(s)
		if err != nil {
			t.Errorf("ParseFingerprint(%q): %v", s, err)
			continue
		}
		if !bytes.Equal(got, sum[:]) {
			t.Errorf("ParseFingerprint(%q) = %x, want %x", s, got, sum)
		}
		if err := VerifyFingerprint(der, s); err != nil {
			t.Errorf("VerifyFingerprint(%q): %v", s, err)
		}
	}
	refused := map[string]string{
		"":                                      "want 64 hex digits",
		"sha256:" + plain[:62]:                  "want 64 hex digits",
		"sha256:" + plain + "00":                "want 64 hex digits",
		"sha256:" + plain[:63] + "g":            "not hexadecimal",
		"sha1:" + plain:                         "unknown prefix",
		"sha256:" + colons[1:]:                  "two hex digits",
		"sha256:" + colons + ":":                "two hex digits",
		"sha256:" + plain[:4] + ":" + plain[4:]: "two hex digits",
	}
	for s, msg := range refused {
		if _, err := ParseFingerprint(s); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseFingerprint(%q) = %v, want an error saying %q", s, err, msg)
		}
	}
}

func TestVerifyFingerprintMismatch(t *testing.T) {
	a, b := []byte("CA one"), []byte("CA two")
	err := VerifyFingerprint(a, FingerprintOf(b))
	if !errors.Is(err, ErrFingerprintMismatch) {
		t.Fatalf("VerifyFingerprint of another CA = %v, want ErrFingerprintMismatch", err)
	}
	for _, fp := range []string{FingerprintOf(a), FingerprintOf(b)} {
		if !strings.Contains(err.Error(), fp) {
			t.Errorf("error %q does not show %s", err, fp)
		}
	}
	if err := VerifyFingerprint(a, "sha256:12"); err == nil || errors.Is(err, ErrFingerprintMismatch) {
		t.Errorf("VerifyFingerprint with a malformed fingerprint = %v, want a parse error", err)
	}
}

func FuzzParseFingerprint(f *testing.F) {
	sum := sha256.Sum256([]byte("x"))
	f.Add(FormatFingerprint(sum[:]))
	f.Add(hex.EncodeToString(sum[:]))
	f.Add("sha256 Fingerprint=AB:CD")
	f.Add("sha256::::")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		if len(b) != sha256.Size {
			t.Fatalf("ParseFingerprint(%q) = %d bytes", s, len(b))
		}
		// What is accepted prints and reads back as the same digest.
		again, err := ParseFingerprint(FormatFingerprint(b))
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("ParseFingerprint(FormatFingerprint(%x)) = %x, %v", b, again, err)
		}
	})
}
