package pki

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"
)

// EnrollTokenPrefix starts every enrollment token ("mst_" starts API
// tokens), so that one is not mistaken for the other.
const EnrollTokenPrefix = "mse_"

// Why an enrollment is refused or held. [EnrollPolicy.Check] wraps them.
var (
	// ErrTokenExpired: the token is past its expiry. The CSR is refused.
	ErrTokenExpired = errors.New("enrollment token expired")
	// ErrTokenUsedUp: the token has been used as often as it may be.
	// The CSR is refused.
	ErrTokenUsedUp = errors.New("enrollment token used up")
	// ErrNeedsApproval: the token is good, but the certname is outside
	// its autosign globs. The CSR is kept and waits for `muster cert
	// sign NAME`.
	ErrNeedsApproval = errors.New("certificate request needs approval")
)

// NewEnrollToken makes an enrollment token: "mse_" and the base64url of
// 32 random bytes. It returns the secret (shown once, given to the
// agent's --enroll-token) and its hash ([HashEnrollToken]), which is all
// the store keeps.
func NewEnrollToken() (secret string, hash []byte) {
	b := make([]byte, 32)
	rand.Read(b) // never fails: crypto/rand.Read crashes the program rather than return an error
	secret = EnrollTokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	return secret, HashEnrollToken(secret)
}

// HashEnrollToken is what the store keeps of an enrollment token: the
// SHA-256 of the whole string. The server looks a token up by this hash
// and never compares secrets as strings.
func HashEnrollToken(secret string) []byte {
	h := sha256.Sum256([]byte(secret))
	return h[:]
}

// EnrollPolicy is what an enrollment token allows: Uses CSRs (Used so
// far), until Expires, signed at once when the certname matches one of
// the comma-separated globs of Certnames ([MatchGlob]). It is a pure
// value: the store must count a use atomically (increment Used only
// while Used < Uses and the token has not expired, in the transaction
// that records the CSR).
type EnrollPolicy struct {
	Uses      int
	Used      int
	Expires   time.Time
	Certnames string
}

// Validate checks a policy as `muster enroll-token create` makes it: at
// least one use, an expiry after now, and valid globs (an empty list is
// valid: every CSR then waits for approval).
func (p EnrollPolicy) Validate(now time.Time) error {
	switch {
	case p.Uses < 1:
		return fmt.Errorf("enrollment token: --uses must be at least 1, not %d", p.Uses)
	case p.Used < 0 || p.Used > p.Uses:
		return fmt.Errorf("enrollment token: used %d times of %d", p.Used, p.Uses)
	case !p.Expires.After(now):
		return fmt.Errorf("enrollment token: it would expire at %s, which is not in the future", p.Expires.UTC().Format(time.RFC3339))
	}
	return ValidGlobs(p.Certnames)
}

// Check decides on a CSR for certname presented with this token at now.
// It returns nil when the CSR may be signed at once; an error wrapping
// [ErrTokenExpired] or [ErrTokenUsedUp] when the token gives no right to
// enroll (refuse the CSR); an error wrapping [ErrNeedsApproval] when the
// token is good but certname is outside its globs (keep the CSR for
// `muster cert sign`); and an error wrapping [ErrInvalidCertname] for a
// name no certificate may carry. The checks run in that order, so an
// expired token is reported as expired whatever the name.
func (p EnrollPolicy) Check(certname string, now time.Time) error {
	if err := ValidCertname(certname); err != nil {
		return err
	}
	switch {
	case !now.Before(p.Expires):
		return fmt.Errorf("%w at %s: %s cannot enroll with it; make a new one with `muster enroll-token create`",
			ErrTokenExpired, p.Expires.UTC().Format(time.RFC3339), certname)
	case p.Used >= p.Uses:
		return fmt.Errorf("%w (%d of %d uses): %s cannot enroll with it; make a new one with `muster enroll-token create`",
			ErrTokenUsedUp, p.Used, p.Uses, certname)
	case !MatchGlob(p.Certnames, certname):
		return fmt.Errorf("%w: %s is outside the token's autosign globs %q; sign it with `muster cert sign %s`",
			ErrNeedsApproval, certname, p.Certnames, certname)
	}
	return nil
}
