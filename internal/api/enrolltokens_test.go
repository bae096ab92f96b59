package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/pki"
)

// mkEnrollToken stores an enrollment token directly, as `muster
// enroll-token create` on the server machine would, and returns it with
// its hash.
func (e *env) mkEnrollToken(uses int, certnames string) (muster.EnrollToken, []byte) {
	e.t.Helper()
	_, hash := pki.NewEnrollToken()
	t, err := e.store.CreateEnrollToken(e.ctx, muster.EnrollToken{Name: fmt.Sprintf("et-%d", exampleSeq.Add(1)),
		Uses: uses, Expires: time.Now().Add(time.Hour), Certnames: certnames, CreatedBy: "local:test"}, hash)
	if err != nil {
		e.t.Fatal(err)
	}
	return t, hash
}

// auditActions lists the audit trail's entries as "action object".
func (e *env) auditActions() []string {
	e.t.Helper()
	l, err := e.client(muster.RoleAdmin).Audit(e.ctx, AuditOptions{Limit: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, a := range l.Entries {
		out = append(out, a.Action+" "+a.Object)
	}
	return out
}

func hasEntry(entries []string, want string) bool {
	for _, e := range entries {
		if e == want {
			return true
		}
	}
	return false
}

func TestCreateEnrollToken(t *testing.T) {
	e := newEnv(t)
	admin := e.client(muster.RoleAdmin)
	out, err := admin.CreateEnrollToken(e.ctx, EnrollTokenRequest{Name: "rack7", Uses: 5, Expires: Duration(48 * time.Hour),
		Certnames: "web*.example.com, db1.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	tok := out.Token
	switch {
	case !strings.HasPrefix(out.Secret, pki.EnrollTokenPrefix) || len(out.Secret) != len(pki.EnrollTokenPrefix)+43:
		t.Errorf("secret %q: want mse_ and 43 characters", out.Secret)
	case out.CAFingerprint != e.ca.Fingerprint():
		t.Errorf("ca_fingerprint %q, want the CA's %q", out.CAFingerprint, e.ca.Fingerprint())
	case tok.Name != "rack7" || tok.Uses != 5 || tok.Used != 0 || tok.State != EnrollTokenLive || tok.CreatedBy != "admin-token":
		t.Errorf("token %+v", tok)
	case tok.Certnames != "web*.example.com, db1.example.com":
		t.Errorf("certnames %q", tok.Certnames)
	case !tok.Expires.Equal(tok.CreatedAt.Add(48 * time.Hour)):
		t.Errorf("expires %v, want 48h after %v", tok.Expires, tok.CreatedAt)
	}
	// The store keeps the secret's hash: an agent enrolls with the secret.
	if _, _, err := e.store.Enroll(e.ctx, pki.HashEnrollToken(out.Secret), "web1.example.com", []byte("csr"), time.Now()); err != nil {
		t.Fatalf("enrolling with the new token: %v", err)
	}
	// The secret is shown once: never listed, never audited.
	r := e.doJSON("GET", "/api/v1/enroll-tokens", e.tokens[muster.RoleAdmin], nil)
	if r.status != http.StatusOK || strings.Contains(r.body, out.Secret) || !strings.Contains(r.body, `"rack7"`) {
		t.Fatalf("list: %d %s", r.status, r.body)
	}
	a := e.doJSON("GET", "/api/v1/audit", e.tokens[muster.RoleAdmin], nil)
	if strings.Contains(a.body, out.Secret) || !strings.Contains(a.body, `"enroll-token.create"`) {
		t.Fatalf("audit: %s", a.body)
	}
	list, err := admin.ListEnrollTokens(e.ctx)
	if err != nil || len(list) != 1 || list[0].Used != 1 || list[0].State != EnrollTokenLive {
		t.Fatalf("list after one use: %+v %v", list, err)
	}

	// The defaults: one use, 24 hours.
	def, err := admin.CreateEnrollToken(e.ctx, EnrollTokenRequest{Name: "one-off"})
	if err != nil {
		t.Fatal(err)
	}
	if def.Token.Uses != 1 || !def.Token.Expires.Equal(def.Token.CreatedAt.Add(24*time.Hour)) || def.Token.Certnames != "" {
		t.Errorf("defaults: %+v", def.Token)
	}
	if def.Secret == out.Secret {
		t.Error("two tokens share a secret")
	}
	// A live name is taken; once revoked it is free again.
	if _, err := admin.CreateEnrollToken(e.ctx, EnrollTokenRequest{Name: "rack7"}); !isStatus(err, http.StatusConflict) {
		t.Fatalf("a second live rack7: %v", err)
	}
	rev, err := admin.RevokeEnrollToken(e.ctx, "rack7")
	if err != nil || rev.State != EnrollTokenRevoked || rev.RevokedAt.IsZero() {
		t.Fatalf("revoke: %+v %v", rev, err)
	}
	_, err = admin.RevokeEnrollToken(e.ctx, "rack7")
	if !isStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), `"rack7"`) {
		t.Fatalf("revoking twice: %v", err)
	}
	if _, err := admin.CreateEnrollToken(e.ctx, EnrollTokenRequest{Name: "rack7"}); err != nil {
		t.Fatalf("rack7 after its revocation: %v", err)
	}
	// A revoked token enrolls no one.
	if _, _, err := e.store.Enroll(e.ctx, pki.HashEnrollToken(out.Secret), "web2.example.com", []byte("csr"), time.Now()); !errors.Is(err, muster.ErrInvalid) {
		t.Fatalf("enrolling with a revoked token: %v", err)
	}
	entries := e.auditActions()
	for _, want := range []string{"enroll-token.create enroll-token/" + itoa(tok.ID), "enroll-token.revoke enroll-token/" + itoa(tok.ID)} {
		if !hasEntry(entries, want) {
			t.Errorf("audit trail lacks %q: %v", want, entries)
		}
	}
}

func TestCreateEnrollTokenRefusesBadInput(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, body, field string
	}{
		{"no name", `{"uses":1}`, "name"},
		{"bad name", `{"name":"a b"}`, "name"},
		{"name starts with a dash", `{"name":"-x"}`, "name"},
		{"zero uses", `{"name":"x","uses":0}`, "uses"},
		{"negative uses", `{"name":"x","uses":-3}`, "uses"},
		{"too many uses", `{"name":"x","uses":1000001}`, "uses"},
		{"uses as a string", `{"name":"x","uses":"2"}`, "uses"},
		{"not a duration", `{"name":"x","expires":"tomorrow"}`, "expires"},
		{"no time at all", `{"name":"x","expires":"0s"}`, "expires"},
		{"in the past", `{"name":"x","expires":"-1h"}`, "expires"},
		{"past a year", `{"name":"x","expires":"8761h"}`, "expires"},
		{"upper-case glob", `{"name":"x","certnames":"WEB*"}`, "certnames"},
		{"empty glob", `{"name":"x","certnames":"web*,,db"}`, "certnames"},
		{"unknown field", `{"name":"x","role":"admin"}`, "role"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/api/v1/enroll-tokens", e.tokens[muster.RoleAdmin], "application/json", strings.NewReader(tc.body))
			if r.status != http.StatusBadRequest {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if msg := errorOf(t, r).Error.Message; !strings.HasPrefix(msg, tc.field+": ") {
				t.Errorf("message %q does not name %s first", msg, tc.field)
			}
		})
	}
	list, err := e.client(muster.RoleAdmin).ListEnrollTokens(e.ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("refused requests stored tokens: %+v %v", list, err)
	}
}

func TestEnrollTokensNeedACA(t *testing.T) {
	e := newEnv(t, noCA)
	_, err := e.client(muster.RoleAdmin).CreateEnrollToken(e.ctx, EnrollTokenRequest{Name: "x"})
	if !isStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), "--agent-listen") {
		t.Fatalf("without a CA: %v", err)
	}
}
