package pki

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewEnrollToken(t *testing.T) {
	s1, h1 := NewEnrollToken()
	s2, h2 := NewEnrollToken()
	if s1 == s2 || bytes.Equal(h1, h2) {
		t.Fatal("two enrollment tokens are equal")
	}
	body, ok := strings.CutPrefix(s1, "mse_")
	if !ok {
		t.Fatalf("token %q does not start with mse_", s1)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) != 32 {
		t.Fatalf("token body %q: %d bytes, %v; want 32 bytes of base64url", body, len(raw), err)
	}
	want := sha256.Sum256([]byte(s1))
	if !bytes.Equal(h1, want[:]) || !bytes.Equal(HashEnrollToken(s1), h1) {
		t.Fatalf("hash %x, want the SHA-256 of the whole token %x", h1, want)
	}
}

func TestEnrollPolicyCheck(t *testing.T) {
	good := EnrollPolicy{Uses: 3, Used: 1, Expires: t0.Add(24 * time.Hour), Certnames: "web*.example.com, db1.example.com"}
	with := func(f func(*EnrollPolicy)) EnrollPolicy { p := good; f(&p); return p }
	tests := []struct {
		name     string
		p        EnrollPolicy
		certname string
		now      time.Time
		want     error // nil = sign at once
		msg      string
	}{
		{"autosign by glob", good, "web1.example.com", t0, nil, ""},
		{"autosign by name", good, "db1.example.com", t0, nil, ""},
		{"last use", with(func(p *EnrollPolicy) { p.Used = 2 }), "web1.example.com", t0, nil, ""},
		{"outside the globs", good, "db2.example.com", t0, ErrNeedsApproval, "muster cert sign db2.example.com"},
		{"glob stays within a label", good, "web1.evil.example.com", t0, ErrNeedsApproval, "outside"},
		{"no globs: always approval", with(func(p *EnrollPolicy) { p.Certnames = "" }), "web1.example.com", t0, ErrNeedsApproval, ""},
		{"expired", good, "web1.example.com", t0.Add(24 * time.Hour), ErrTokenExpired, "2026-12-02T12:00:00Z"},
		{"expired, outside globs", good, "db2.example.com", t0.Add(48 * time.Hour), ErrTokenExpired, ""},
		{"zero expiry", with(func(p *EnrollPolicy) { p.Expires = time.Time{} }), "web1.example.com", t0, ErrTokenExpired, ""},
		{"used up", with(func(p *EnrollPolicy) { p.Used = 3 }), "web1.example.com", t0, ErrTokenUsedUp, "3 of 3 uses"},
		{"zero uses", with(func(p *EnrollPolicy) { p.Uses, p.Used = 0, 0 }), "web1.example.com", t0, ErrTokenUsedUp, ""},
		{"bad certname", good, "Web1.example.com", t0, ErrInvalidCertname, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Check(tt.certname, tt.now)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			for _, other := range []error{ErrNeedsApproval, ErrTokenExpired, ErrTokenUsedUp, ErrInvalidCertname} {
				if other != tt.want && errors.Is(err, other) {
					t.Errorf("Check = %v, which also wraps %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("Check = %q, want it to say %q", err, tt.msg)
			}
		})
	}
}

func TestEnrollPolicyValidate(t *testing.T) {
	day := t0.Add(24 * time.Hour)
	tests := []struct {
		p   EnrollPolicy
		msg string // "" = valid
	}{
		{EnrollPolicy{Uses: 1, Expires: day, Certnames: "web*.example.com"}, ""},
		{EnrollPolicy{Uses: 100, Expires: day}, ""},
		{EnrollPolicy{Uses: 0, Expires: day}, "at least 1"},
		{EnrollPolicy{Uses: 2, Used: 3, Expires: day}, "used 3 times of 2"},
		{EnrollPolicy{Uses: 1, Expires: t0}, "not in the future"},
		{EnrollPolicy{Uses: 1, Expires: day, Certnames: "web*.example.com,"}, "empty glob"},
	}
	for _, tt := range tests {
		err := tt.p.Validate(t0)
		switch {
		case tt.msg == "" && err != nil:
			t.Errorf("Validate(%+v) = %v, want nil", tt.p, err)
		case tt.msg != "" && (err == nil || !strings.Contains(err.Error(), tt.msg)):
			t.Errorf("Validate(%+v) = %v, want an error saying %q", tt.p, err, tt.msg)
		}
	}
}
