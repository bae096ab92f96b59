package storetest

// cases_auth.go: API tokens and the audit trail.

import (
	"crypto/sha256"
	"errors"
	"strings"
	"time"

	"github.com/muster-run/muster"
)

func hashOf(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

func (e *env) createToken(name string, role muster.Role, secret string) muster.Token {
	e.t.Helper()
	t, err := e.s.CreateToken(e.ctx, muster.Token{Name: name, Role: role, CreatedBy: "root"}, hashOf(secret))
	if err != nil {
		e.t.Fatalf("CreateToken(%s): %v", name, err)
	}
	return t
}

func (e *env) token(name string) muster.Token {
	e.t.Helper()
	ts, err := e.s.ListTokens(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, t := range ts {
		if t.Name == name && t.RevokedAt.IsZero() {
			return t
		}
	}
	e.t.Fatalf("no live token %s in %+v", name, ts)
	return muster.Token{}
}

func testTokens(e *env) {
	ci := e.createToken("ci", muster.RoleOperator, "s3cret")
	if ci.ID == 0 || ci.Name != "ci" || ci.Role != muster.RoleOperator || ci.CreatedBy != "root" ||
		!ci.CreatedAt.Equal(e.clk.Now()) || !ci.LastUsedAt.IsZero() || !ci.RevokedAt.IsZero() {
		e.t.Fatalf("created %+v", ci)
	}
	invalid := []struct {
		name string
		t    muster.Token
		hash []byte
	}{
		{"a live name again", muster.Token{Name: "ci", Role: muster.RoleViewer}, hashOf("other")},
		{"a secret in use", muster.Token{Name: "ci2", Role: muster.RoleViewer}, hashOf("s3cret")},
		{"no name", muster.Token{Role: muster.RoleViewer}, hashOf("x1")},
		{"a space", muster.Token{Name: "my token", Role: muster.RoleViewer}, hashOf("x2")},
		{"a local actor's name", muster.Token{Name: "local:root", Role: muster.RoleViewer}, hashOf("x3")},
		{"a leading dash", muster.Token{Name: "-x", Role: muster.RoleViewer}, hashOf("x4")},
		{"a long name", muster.Token{Name: strings.Repeat("n", 65), Role: muster.RoleViewer}, hashOf("x5")},
		{"an unknown role", muster.Token{Name: "root", Role: "root"}, hashOf("x6")},
		{"no role", muster.Token{Name: "norole"}, hashOf("x7")},
		{"a short hash", muster.Token{Name: "short", Role: muster.RoleViewer}, []byte("abc")},
	}
	for _, tc := range invalid {
		if _, err := e.s.CreateToken(e.ctx, tc.t, tc.hash); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("CreateToken with %s = %v, want ErrInvalid", tc.name, err)
		}
	}
	e.createToken("deploy.bot-1@ci_x", muster.RoleViewer, "other")

	if got, err := e.s.TokenByHash(e.ctx, hashOf("s3cret")); err != nil || got.ID != ci.ID || got.Role != muster.RoleOperator {
		e.t.Fatalf("TokenByHash = %+v, %v", got, err)
	}
	for _, h := range [][]byte{hashOf("unknown"), nil} {
		if _, err := e.s.TokenByHash(e.ctx, h); !errors.Is(err, muster.ErrNotFound) {
			e.t.Errorf("TokenByHash(%x) = %v, want ErrNotFound", h, err)
		}
	}
	e.clk.Advance(time.Second)
	revoked, err := e.s.RevokeToken(e.ctx, "ci")
	if err != nil || revoked.ID != ci.ID || !revoked.RevokedAt.Equal(e.clk.Now()) {
		e.t.Fatalf("RevokeToken = %+v, %v", revoked, err)
	}
	if _, err := e.s.TokenByHash(e.ctx, hashOf("s3cret")); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("TokenByHash(revoked) = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"ci", "nobody"} {
		if _, err := e.s.RevokeToken(e.ctx, name); !errors.Is(err, muster.ErrNotFound) {
			e.t.Errorf("RevokeToken(%s) = %v, want ErrNotFound", name, err)
		}
	}
	// The name is free again once revoked.
	ci2 := e.createToken("ci", muster.RoleAdmin, "new secret")
	if ci2.ID == ci.ID {
		e.t.Fatal("the new token reused the revoked one's id")
	}
	ts, err := e.s.ListTokens(e.ctx)
	if err != nil || len(ts) != 3 {
		e.t.Fatalf("ListTokens = %+v, %v", ts, err)
	}
	if ts[0].ID != ci.ID || ts[0].RevokedAt.IsZero() || ts[2].ID != ci2.ID || !ts[2].RevokedAt.IsZero() || ts[2].Role != muster.RoleAdmin {
		e.t.Errorf("ListTokens, by id: %+v", ts)
	}
}

func testTokenLastUsed(e *env) {
	start := e.clk.Now()
	e.createToken("ci", muster.RoleViewer, "s3cret")
	use := func() muster.Token {
		e.t.Helper()
		t, err := e.s.TokenByHash(e.ctx, hashOf("s3cret"))
		if err != nil {
			e.t.Fatal(err)
		}
		return t
	}
	steps := []struct {
		advance time.Duration
		want    time.Time // the stored LastUsedAt after a use
	}{
		{0, start},                                     // the first use is noted
		{30 * time.Second, start},                      // then at most once a minute
		{29 * time.Second, start},                      // 59s
		{2 * time.Second, start.Add(61 * time.Second)}, // 61s: noted
		{59 * time.Second, start.Add(61 * time.Second)},
		{time.Second, start.Add(121 * time.Second)},
	}
	for i, st := range steps {
		e.clk.Advance(st.advance)
		got := use()
		if stored := e.token("ci").LastUsedAt; !stored.Equal(st.want) || !got.LastUsedAt.Equal(st.want) {
			e.t.Errorf("step %d (at +%v): returned LastUsedAt +%v, stored +%v; want +%v", i, e.clk.Now().Sub(start),
				got.LastUsedAt.Sub(start), stored.Sub(start), st.want.Sub(start))
		}
	}
}

func testAudit(e *env) {
	entries := []muster.AuditEntry{
		{Actor: "alice", Role: muster.RoleOperator, Action: "job.submit", Object: "job/1", Remote: "10.0.0.1:5000", Detail: `{"targets":["a"]}`},
		{Actor: "local:root", Role: muster.RoleAdmin, Action: "token.create", Object: "token/1"},
		{Actor: "alice", Role: muster.RoleOperator, Action: "job.bump", Object: "job/1"},
		{Actor: "bob", Role: muster.RoleViewer, Action: "job.cancel", Object: "job/1", At: e.clk.Now().Add(-time.Hour)},
	}
	for _, en := range entries {
		e.clk.Advance(time.Second)
		if err := e.s.Audit(e.ctx, en); err != nil {
			e.t.Fatalf("Audit(%+v): %v", en, err)
		}
	}
	all, err := e.s.ListAudit(e.ctx, muster.AuditFilter{})
	if err != nil || len(all) != len(entries) {
		e.t.Fatalf("ListAudit = %d entries, %v", len(all), err)
	}
	for i, got := range all {
		want := entries[len(entries)-1-i] // newest first
		if got.Actor != want.Actor || got.Action != want.Action || got.Object != want.Object || got.Role != want.Role ||
			got.Remote != want.Remote || got.Detail != want.Detail || (i > 0 && got.ID >= all[i-1].ID) {
			e.t.Errorf("entry %d: %+v, want %+v", i, got, want)
		}
	}
	if first := all[len(all)-1]; !first.At.Equal(e.clk.Now().Add(-3 * time.Second)) {
		e.t.Errorf("defaulted At %v, want the clock's %v", first.At, e.clk.Now().Add(-3*time.Second))
	}
	if !all[0].At.Equal(e.clk.Now().Add(-4*time.Second - time.Hour)) {
		e.t.Errorf("given At %v not kept", all[0].At)
	}
	page, err := e.s.ListAudit(e.ctx, muster.AuditFilter{Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != all[0].ID || page[1].ID != all[1].ID {
		e.t.Fatalf("first page = %+v, %v", page, err)
	}
	page, err = e.s.ListAudit(e.ctx, muster.AuditFilter{Limit: 2, BeforeID: page[1].ID})
	if err != nil || len(page) != 2 || page[0].ID != all[2].ID || page[1].ID != all[3].ID {
		e.t.Fatalf("second page = %+v, %v", page, err)
	}
	alice, err := e.s.ListAudit(e.ctx, muster.AuditFilter{Actor: "alice"})
	if err != nil || len(alice) != 2 || alice[0].Action != "job.bump" || alice[1].Action != "job.submit" {
		e.t.Fatalf("alice's entries = %+v, %v", alice, err)
	}
	if got, err := e.s.ListAudit(e.ctx, muster.AuditFilter{Actor: "alice", BeforeID: alice[0].ID}); err != nil || len(got) != 1 || got[0].ID != alice[1].ID {
		e.t.Fatalf("alice's second page = %+v, %v", got, err)
	}
	for _, bad := range []muster.AuditEntry{
		{Action: "job.submit"},
		{Actor: "alice"},
		{Actor: "alice", Action: "job.submit", Role: "root"},
		{Actor: "alice", Action: "job.submit", Detail: "{not json"},
	} {
		if err := e.s.Audit(e.ctx, bad); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("Audit(%+v) = %v, want ErrInvalid", bad, err)
		}
	}
}
