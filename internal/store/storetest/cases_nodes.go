package storetest

// cases_nodes.go: pull mode's nodes and enrollment tokens (the pull runs
// that agents claim are in cases_pull.go).

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
)

func (e *env) createEnrollToken(t muster.EnrollToken, secret string) muster.EnrollToken {
	e.t.Helper()
	if t.CreatedBy == "" {
		t.CreatedBy = "root"
	}
	out, err := e.s.CreateEnrollToken(e.ctx, t, hashOf(secret))
	if err != nil {
		e.t.Fatalf("CreateEnrollToken(%s): %v", t.Name, err)
	}
	return out
}

func (e *env) enrollToken(name string) muster.EnrollToken {
	e.t.Helper()
	ts, err := e.s.ListEnrollTokens(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, t := range ts {
		if t.Name == name && t.RevokedAt.IsZero() {
			return t
		}
	}
	e.t.Fatalf("no live enrollment token %s in %+v", name, ts)
	return muster.EnrollToken{}
}

func (e *env) enroll(secret, certname string) muster.Node {
	e.t.Helper()
	_, n, err := e.s.Enroll(e.ctx, hashOf(secret), certname, []byte("csr of "+certname), e.clk.Now())
	if err != nil {
		e.t.Fatalf("Enroll(%s): %v", certname, err)
	}
	return n
}

func (e *env) sign(certname, serial string) muster.Node {
	e.t.Helper()
	n, err := e.s.SignNode(e.ctx, certname, serial, []byte("cert "+serial), e.clk.Now().Add(24*time.Hour), e.clk.Now())
	if err != nil {
		e.t.Fatalf("SignNode(%s, %s): %v", certname, serial, err)
	}
	return n
}

func (e *env) node(certname string) muster.Node {
	e.t.Helper()
	n, err := e.s.GetNode(e.ctx, certname)
	if err != nil {
		e.t.Fatalf("GetNode(%s): %v", certname, err)
	}
	return n
}

// signedNodes enrolls and signs each certname (serials 1, 2, ...).
func (e *env) signedNodes(certnames ...string) {
	e.t.Helper()
	e.createEnrollToken(muster.EnrollToken{Name: "fleet"}, "fleet secret")
	for i, c := range certnames {
		e.enroll("fleet secret", c)
		e.sign(c, fmt.Sprintf("%x", i+1))
	}
}

func testEnrollTokens(e *env) {
	expires := e.clk.Now().Add(time.Hour)
	web := e.createEnrollToken(muster.EnrollToken{Name: "web", Uses: 3, Expires: expires, Certnames: "web*.example.com,lb?"}, "s3cret")
	if web.ID == 0 || web.Name != "web" || web.Uses != 3 || web.Used != 0 || !web.Expires.Equal(expires) ||
		web.Certnames != "web*.example.com,lb?" || web.CreatedBy != "root" || !web.CreatedAt.Equal(e.clk.Now()) || !web.RevokedAt.IsZero() {
		e.t.Fatalf("created %+v", web)
	}
	invalid := []struct {
		name string
		t    muster.EnrollToken
		hash []byte
	}{
		{"a live name again", muster.EnrollToken{Name: "web"}, hashOf("other")},
		{"a secret in use", muster.EnrollToken{Name: "web2"}, hashOf("s3cret")},
		{"no name", muster.EnrollToken{}, hashOf("x1")},
		{"a space", muster.EnrollToken{Name: "my token"}, hashOf("x2")},
		{"a colon", muster.EnrollToken{Name: "agent:x"}, hashOf("x3")},
		{"a long name", muster.EnrollToken{Name: strings.Repeat("n", 65)}, hashOf("x4")},
		{"negative uses", muster.EnrollToken{Name: "neg", Uses: -1}, hashOf("x5")},
		{"a short hash", muster.EnrollToken{Name: "short"}, []byte("abc")},
	}
	for _, tc := range invalid {
		if _, err := e.s.CreateEnrollToken(e.ctx, tc.t, tc.hash); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("CreateEnrollToken with %s = %v, want ErrInvalid", tc.name, err)
		}
	}
	if _, err := e.s.CreateEnrollToken(e.ctx, muster.EnrollToken{Name: "web"}, hashOf("other")); err == nil ||
		!strings.Contains(err.Error(), `live enrollment token named "web"`) {
		e.t.Errorf("name clash: %v", err)
	}
	db := e.createEnrollToken(muster.EnrollToken{Name: "db"}, "db secret")
	e.clk.Advance(time.Second)
	revoked, err := e.s.RevokeEnrollToken(e.ctx, "web")
	if err != nil || revoked.ID != web.ID || !revoked.RevokedAt.Equal(e.clk.Now()) || revoked.Uses != 3 {
		e.t.Fatalf("RevokeEnrollToken = %+v, %v", revoked, err)
	}
	for _, name := range []string{"web", "nobody"} {
		if _, err := e.s.RevokeEnrollToken(e.ctx, name); !errors.Is(err, muster.ErrNotFound) {
			e.t.Errorf("RevokeEnrollToken(%s) = %v, want ErrNotFound", name, err)
		}
	}
	// The name is free again once revoked; the old secret stays taken.
	if _, err := e.s.CreateEnrollToken(e.ctx, muster.EnrollToken{Name: "web"}, hashOf("s3cret")); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("a revoked token's secret again = %v, want ErrInvalid", err)
	}
	web2 := e.createEnrollToken(muster.EnrollToken{Name: "web"}, "new secret")
	ts, err := e.s.ListEnrollTokens(e.ctx)
	if err != nil || len(ts) != 3 {
		e.t.Fatalf("ListEnrollTokens = %+v, %v", ts, err)
	}
	if ts[0].ID != web.ID || ts[0].RevokedAt.IsZero() || ts[1].ID != db.ID || ts[2].ID != web2.ID || !ts[2].RevokedAt.IsZero() ||
		ts[2].Uses != 0 || !ts[2].Expires.IsZero() {
		e.t.Errorf("ListEnrollTokens, by id: %+v", ts)
	}
}

func testEnrollRefused(e *env) {
	now := e.clk.Now()
	e.createEnrollToken(muster.EnrollToken{Name: "late", Expires: now.Add(time.Hour)}, "late")
	e.createEnrollToken(muster.EnrollToken{Name: "once", Uses: 1}, "once")
	e.createEnrollToken(muster.EnrollToken{Name: "gone"}, "gone")
	e.enroll("once", "first")
	if _, err := e.s.RevokeEnrollToken(e.ctx, "gone"); err != nil {
		e.t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret string
		at     time.Time
		want   string
	}{
		{"expired", "late", now.Add(time.Hour), `enrollment token "late" expired at ` + now.Add(time.Hour).Format(time.RFC3339)},
		{"long expired", "late", now.Add(48 * time.Hour), `enrollment token "late" expired at`},
		{"used up", "once", now, `enrollment token "once" used up (1 of 1)`},
		{"revoked", "gone", now, `enrollment token "gone" was revoked at`},
		{"unknown", "who knows", now, "unknown or revoked enrollment token"},
	}
	for _, tc := range tests {
		_, _, err := e.s.Enroll(e.ctx, hashOf(tc.secret), "web1", []byte("csr"), tc.at)
		if !errors.Is(err, muster.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			e.t.Errorf("Enroll with a token %s = %v, want ErrInvalid saying %q", tc.name, err, tc.want)
		}
	}
	// A second before it expires, the token still works.
	if tok, n, err := e.s.Enroll(e.ctx, hashOf("late"), "web1", []byte("csr"), now.Add(time.Hour-time.Second)); err != nil ||
		tok.Name != "late" || tok.Used != 1 || n.State != muster.NodePending {
		e.t.Fatalf("Enroll before expiry = %+v, %+v, %v", tok, n, err)
	}
	if _, err := e.s.GetNode(e.ctx, "web2"); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("GetNode(web2) = %v, want ErrNotFound", err)
	}
	if got := e.enrollToken("once").Used; got != 1 {
		e.t.Errorf("refused enrollments counted uses: once.Used = %d", got)
	}
	for _, tc := range []struct{ certname, csr string }{{"", "csr"}, {"web 1", "csr"}, {"agent:web1", "csr"}, {"-web", "csr"}, {"web3", ""}} {
		if _, _, err := e.s.Enroll(e.ctx, hashOf("late"), tc.certname, []byte(tc.csr), now); !errors.Is(err, muster.ErrInvalid) {
			e.t.Errorf("Enroll(%q, csr %q) = %v, want ErrInvalid", tc.certname, tc.csr, err)
		}
	}
}

func testEnrollConcurrent(e *env) {
	for _, uses := range []int{1, 3} {
		name := fmt.Sprintf("uses%d", uses)
		e.createEnrollToken(muster.EnrollToken{Name: name, Uses: uses}, name)
		const n = 8
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				_, _, errs[i] = e.s.Enroll(e.ctx, hashOf(name), fmt.Sprintf("%s-node%d", name, i), []byte("csr"), e.clk.Now())
			})
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, muster.ErrInvalid) || !strings.Contains(err.Error(), "used up"):
				e.t.Errorf("a losing enrollment with %s: %v, want used up", name, err)
			}
		}
		if won != uses || e.enrollToken(name).Used != uses {
			e.t.Errorf("%d concurrent enrollments with a token of %d uses: %d succeeded, Used = %d",
				n, uses, won, e.enrollToken(name).Used)
		}
	}
	ns, err := e.s.ListNodes(e.ctx)
	if err != nil || len(ns) != 4 {
		e.t.Fatalf("ListNodes = %d nodes, %v; want 4", len(ns), err)
	}
}

func testEnrollReplaces(e *env) {
	start := e.clk.Now()
	e.createEnrollToken(muster.EnrollToken{Name: "fleet"}, "fleet")
	e.createEnrollToken(muster.EnrollToken{Name: "other"}, "other")
	n := e.enroll("fleet", "web1")
	if n.Certname != "web1" || n.State != muster.NodePending || string(n.CSR) != "csr of web1" || n.Serial != "" || n.Cert != nil ||
		!n.EnrolledAt.Equal(start) || !n.SignedAt.IsZero() || n.EnrolledWith != "fleet" {
		e.t.Fatalf("enrolled %+v", n)
	}
	// A pending node's request is replaced; it keeps its first request's time.
	e.clk.Advance(time.Minute)
	if _, n, err := e.s.Enroll(e.ctx, hashOf("other"), "web1", []byte("csr 2"), e.clk.Now()); err != nil ||
		n.State != muster.NodePending || string(n.CSR) != "csr 2" || !n.EnrolledAt.Equal(start) || n.EnrolledWith != "other" {
		e.t.Fatalf("Enroll over a pending node = %+v, %v", n, err)
	}
	n = e.sign("web1", "0A1B")
	if n.State != muster.NodeSigned || n.Serial != "0a1b" || string(n.Cert) != "cert 0A1B" || n.CSR != nil ||
		!n.SignedAt.Equal(e.clk.Now()) || !n.CertExpires.Equal(e.clk.Now().Add(24*time.Hour)) || !n.LastCheckIn.IsZero() {
		e.t.Fatalf("signed %+v", n)
	}
	want := "node web1 already holds a valid certificate: revoke it first (muster cert revoke web1)"
	if _, _, err := e.s.Enroll(e.ctx, hashOf("fleet"), "web1", []byte("csr 3"), e.clk.Now()); !errors.Is(err, muster.ErrInvalid) ||
		!strings.Contains(err.Error(), want) {
		e.t.Fatalf("Enroll over a signed node = %v, want %q", err, want)
	}
	if got := e.enrollToken("fleet").Used; got != 1 {
		e.t.Errorf("a refused enrollment counted a use: Used = %d", got)
	}
	if got := e.node("web1"); got.State != muster.NodeSigned || got.Serial != "0a1b" {
		e.t.Fatalf("the refused enrollment changed the node: %+v", got)
	}
	e.clk.Advance(time.Minute)
	n, err := e.s.RevokeNode(e.ctx, "web1")
	if err != nil || n.State != muster.NodeRevoked || n.Serial != "0a1b" {
		e.t.Fatalf("RevokeNode = %+v, %v", n, err)
	}
	if _, err := e.s.SignNode(e.ctx, "web1", "0c", []byte("c"), e.clk.Now().Add(time.Hour), e.clk.Now()); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("SignNode of a revoked node = %v, want ErrInvalid", err)
	}
	// A revoked node enrolls anew.
	n = e.enroll("fleet", "web1")
	if n.State != muster.NodePending || n.Serial != "" || n.Cert != nil || !n.CertExpires.IsZero() || !n.EnrolledAt.Equal(e.clk.Now()) {
		e.t.Fatalf("Enroll over a revoked node: %+v", n)
	}
	// So does a signed node whose certificate expired.
	e.sign("web1", "0d")
	e.clk.Advance(24 * time.Hour)
	if n = e.enroll("fleet", "web1"); n.State != muster.NodePending || n.Serial != "" {
		e.t.Fatalf("Enroll over an expired certificate: %+v", n)
	}
	if _, err := e.s.RevokeNode(e.ctx, "nobody"); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("RevokeNode(nobody) = %v, want ErrNotFound", err)
	}
}

func testSignAndSerials(e *env) {
	e.createEnrollToken(muster.EnrollToken{Name: "fleet"}, "fleet")
	e.enroll("fleet", "web1")
	e.enroll("fleet", "db1")
	revoked := func(serial string, want bool) {
		e.t.Helper()
		got, err := e.s.SerialRevoked(e.ctx, serial)
		if err != nil || got != want {
			e.t.Errorf("SerialRevoked(%s) = %v, %v; want %v", serial, got, err, want)
		}
	}
	revoked("", true) // a pending node has no serial in force
	e.sign("web1", "aa01")
	revoked("aa01", false)
	revoked("AA01", false)
	revoked("ff", true) // unknown
	// Renewal: the new serial is in force, the old one no longer.
	e.clk.Advance(time.Hour)
	n := e.sign("web1", "bb02")
	if n.Serial != "bb02" || !n.LastCheckIn.Equal(e.clk.Now()) || !n.SignedAt.Equal(e.clk.Now()) {
		e.t.Fatalf("renewed %+v", n)
	}
	revoked("aa01", true)
	revoked("bb02", false)
	// A serial names one certificate.
	if _, err := e.s.SignNode(e.ctx, "db1", "BB02", []byte("c"), e.clk.Now().Add(time.Hour), e.clk.Now()); !errors.Is(err, muster.ErrInvalid) {
		e.t.Errorf("SignNode with web1's serial = %v, want ErrInvalid", err)
	}
	if got := e.node("db1"); got.State != muster.NodePending {
		e.t.Fatalf("db1 after a refused signing: %+v", got)
	}
	bad := []struct {
		name, certname, serial string
		cert                   []byte
		expires                time.Time
		want                   error
	}{
		{"an unknown node", "nobody", "cc", []byte("c"), e.clk.Now().Add(time.Hour), muster.ErrNotFound},
		{"a serial not hex", "db1", "xyz", []byte("c"), e.clk.Now().Add(time.Hour), muster.ErrInvalid},
		{"no serial", "db1", "", []byte("c"), e.clk.Now().Add(time.Hour), muster.ErrInvalid},
		{"no certificate", "db1", "cc", nil, e.clk.Now().Add(time.Hour), muster.ErrInvalid},
		{"an expired certificate", "db1", "cc", []byte("c"), e.clk.Now(), muster.ErrInvalid},
	}
	for _, tc := range bad {
		if _, err := e.s.SignNode(e.ctx, tc.certname, tc.serial, tc.cert, tc.expires, e.clk.Now()); !errors.Is(err, tc.want) {
			e.t.Errorf("SignNode with %s = %v, want %v", tc.name, err, tc.want)
		}
	}
	e.sign("db1", "cc03")
	if _, err := e.s.RevokeNode(e.ctx, "web1"); err != nil {
		e.t.Fatal(err)
	}
	revoked("bb02", true)
	revoked("cc03", false)
	// Revoking again changes nothing.
	if n, err := e.s.RevokeNode(e.ctx, "web1"); err != nil || n.State != muster.NodeRevoked {
		e.t.Fatalf("RevokeNode again = %+v, %v", n, err)
	}
}

func testNodesListAndRuns(e *env) {
	e.signedNodes("web2", "db1", "web1")
	ns, err := e.s.ListNodes(e.ctx)
	if err != nil || len(ns) != 3 {
		e.t.Fatalf("ListNodes = %+v, %v", ns, err)
	}
	for i, want := range []string{"db1", "web1", "web2"} {
		if ns[i].Certname != want || ns[i].State != muster.NodeSigned || ns[i].EnrolledWith != "fleet" {
			e.t.Errorf("node %d: %+v, want %s, signed", i, ns[i], want)
		}
	}
	if _, err := e.s.GetNode(e.ctx, "nobody"); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("GetNode(nobody) = %v, want ErrNotFound", err)
	}
	e.clk.Advance(time.Minute)
	if err := e.s.NoteNodeRun(e.ctx, "web1", 42, e.clk.Now()); err != nil {
		e.t.Fatal(err)
	}
	if n := e.node("web1"); n.LastRunID != 42 || !n.LastRunAt.Equal(e.clk.Now()) || !n.LastCheckIn.Equal(e.clk.Now()) {
		e.t.Errorf("after NoteNodeRun: %+v", n)
	}
	if n := e.node("web2"); n.LastRunID != 0 || !n.LastRunAt.IsZero() {
		e.t.Errorf("NoteNodeRun of web1 changed web2: %+v", n)
	}
	if err := e.s.NoteNodeRun(e.ctx, "nobody", 1, e.clk.Now()); !errors.Is(err, muster.ErrNotFound) {
		e.t.Errorf("NoteNodeRun(nobody) = %v, want ErrNotFound", err)
	}
}
