package pki

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// FingerprintPrefix starts every fingerprint muster prints.
const FingerprintPrefix = "sha256:"

// ErrFingerprintMismatch marks a CA whose fingerprint is not the expected
// one: the agent is talking to another server, or to someone in between.
var ErrFingerprintMismatch = errors.New("CA fingerprint mismatch")

// FingerprintOf returns the fingerprint of a certificate: "sha256:" and
// the 64 lowercase hex digits of the SHA-256 of its DER bytes. It is the
// same digest `openssl x509 -noout -fingerprint -sha256` prints.
func FingerprintOf(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return FingerprintPrefix + hex.EncodeToString(sum[:])
}

// ParseFingerprint reads a SHA-256 fingerprint as an operator may paste
// it: "sha256:" followed by 64 hex digits, either plain or as 32 pairs
// separated by colons, in either case. The prefix may be left out, and
// openssl's "SHA256 Fingerprint=AB:CD:..." is accepted too. It returns the
// 32 bytes of the digest.
func ParseFingerprint(s string) ([]byte, error) {
	h := strings.TrimSpace(s)
	lower := strings.ToLower(h)
	for _, p := range []string{FingerprintPrefix, "sha256 fingerprint=", "sha256="} {
		if strings.HasPrefix(lower, p) {
			h = h[len(p):]
			break
		}
	}
	if strings.Contains(h, ":") {
		parts := strings.Split(h, ":")
		if strings.Trim(strings.ToLower(parts[0]), "0123456789abcdef") != "" {
			return nil, fmt.Errorf("fingerprint %q: unknown prefix %q: muster's fingerprints are %s and 64 hex digits", clip(s), clip(parts[0]), FingerprintPrefix)
		}
		for _, p := range parts {
			if len(p) != 2 {
				return nil, fmt.Errorf("fingerprint %q: with colons, every byte must be two hex digits (AB:CD:...)", clip(s))
			}
		}
		h = strings.Join(parts, "")
	}
	if len(h) != 2*sha256.Size {
		return nil, fmt.Errorf("fingerprint %q: want %d hex digits of a SHA-256 digest, got %d characters", clip(s), 2*sha256.Size, len(h))
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("fingerprint %q: not hexadecimal: %w", clip(s), err)
	}
	return b, nil
}

// FormatFingerprint prints a 32-byte digest the way [FingerprintOf] does.
func FormatFingerprint(sum []byte) string {
	return FingerprintPrefix + hex.EncodeToString(sum)
}

// VerifyFingerprint checks that the certificate caCertDER has the
// fingerprint want (in any form [ParseFingerprint] reads), comparing the
// digests in constant time. A different certificate gives an error
// wrapping [ErrFingerprintMismatch] that shows both fingerprints.
func VerifyFingerprint(caCertDER []byte, want string) error {
	w, err := ParseFingerprint(want)
	if err != nil {
		return err
	}
	got := sha256.Sum256(caCertDER)
	if subtle.ConstantTimeCompare(got[:], w) != 1 {
		return fmt.Errorf("%w: the server's CA is %s, but %s was expected: refusing to trust it",
			ErrFingerprintMismatch, FormatFingerprint(got[:]), FormatFingerprint(w))
	}
	return nil
}
