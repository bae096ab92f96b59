package api

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/pki"
)

// newCertname returns a certname no other test node has.
func newCertname() string { return fmt.Sprintf("node%d.example.com", exampleSeq.Add(1)) }

// enrolled is a node enrolled through the store, with its request.
type enrolled struct {
	muster.Node
	CSR []byte // the request's DER
}

// enrollNode enrolls certname through the store with a fresh enrollment
// token, as the agent listener does, and, when signed, signs it with the
// env's CA as autosigning would.
func (e *env) enrollNode(certname string, signed bool) enrolled {
	e.t.Helper()
	key, err := pki.NewKey()
	if err != nil {
		e.t.Fatal(err)
	}
	csrDER, err := pki.NewCSR(key, certname)
	if err != nil {
		e.t.Fatal(err)
	}
	_, hash := e.mkEnrollToken(1, "")
	_, n, err := e.store.Enroll(e.ctx, hash, certname, csrDER, time.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	if signed {
		csr, _, err := pki.ParseCSR(csrDER)
		if err != nil {
			e.t.Fatal(err)
		}
		der, serial, err := e.ca.Sign(csr, certname, 24*time.Hour, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			e.t.Fatal(err)
		}
		if n, err = e.store.SignNode(e.ctx, certname, pki.FormatSerial(serial), der, cert.NotAfter, time.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
	return enrolled{Node: n, CSR: csrDER}
}

// signalled reports whether a signal is waiting on s.
func signalled(s *events.Subscription) bool {
	select {
	case <-s.C:
		return true
	default:
		return false
	}
}

// withHub gives the server an event hub.
func withHub(h *events.Hub) envOption { return func(c *Config) { c.Events = h } }

// TestNodeRoles: who may do what to nodes and enrollment tokens.
func TestNodeRoles(t *testing.T) {
	e := newEnv(t)
	type call func(c *Client) error
	createToken := func(c *Client) error {
		_, err := c.CreateEnrollToken(e.ctx, EnrollTokenRequest{Name: fmt.Sprintf("r-%d", exampleSeq.Add(1))})
		return err
	}
	listTokens := func(c *Client) error { _, err := c.ListEnrollTokens(e.ctx); return err }
	sign := func(c *Client) error {
		_, err := c.SignNode(e.ctx, e.enrollNode(newCertname(), false).Certname)
		return err
	}
	revoke := func(c *Client) error {
		_, err := c.RevokeNode(e.ctx, e.enrollNode(newCertname(), true).Certname)
		return err
	}
	run := func(c *Client) error {
		_, err := c.RunNode(e.ctx, e.enrollNode(newCertname(), true).Certname)
		return err
	}
	runMany := func(c *Client) error {
		_, err := c.RunNodes(e.ctx, Targets{Spec: e.enrollNode(newCertname(), true).Certname})
		return err
	}
	list := func(c *Client) error { _, err := c.ListNodes(e.ctx, ListNodesOptions{}); return err }
	get := func(c *Client) error { _, err := c.Node(e.ctx, e.enrollNode(newCertname(), true).Certname); return err }
	ca := func(c *Client) error { _, err := c.CA(e.ctx); return err }
	tests := []struct {
		name  string
		call  call
		least muster.Role // the least role allowed
	}{
		{"create enrollment token", createToken, muster.RoleAdmin},
		{"list enrollment tokens", listTokens, muster.RoleAdmin},
		{"sign", sign, muster.RoleAdmin},
		{"revoke", revoke, muster.RoleAdmin},
		{"run now", run, muster.RoleOperator},
		{"run now, many", runMany, muster.RoleOperator},
		{"list nodes", list, muster.RoleViewer},
		{"get node", get, muster.RoleViewer},
		{"get the CA", ca, muster.RoleViewer},
	}
	for _, tc := range tests {
		for _, role := range muster.Roles {
			t.Run(tc.name+"/"+string(role), func(t *testing.T) {
				err := tc.call(e.client(role))
				switch {
				case role.Allows(tc.least) && err != nil:
					t.Fatalf("%s may, but: %v", role, err)
				case !role.Allows(tc.least) && !isStatus(err, http.StatusForbidden):
					t.Fatalf("%s may not, but: %v", role, err)
				}
			})
		}
	}
}

func TestSignNode(t *testing.T) {
	hub := events.New()
	e := newEnv(t, withHub(hub))
	admin, viewer := e.client(muster.RoleAdmin), e.client(muster.RoleViewer)
	n := e.enrollNode("web1.example.com", false)
	got, err := viewer.Node(e.ctx, n.Certname)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != muster.NodePending || got.RequestFingerprint != pki.FingerprintOf(n.CSR) || got.Serial != "" ||
		got.Certificate != "" || got.EnrolledWith != n.EnrolledWith || got.EnrolledAt.IsZero() {
		t.Fatalf("pending node: %+v", got)
	}
	sub := hub.SubscribeNode(n.Certname)
	defer sub.Close()
	signed, err := admin.SignNode(e.ctx, n.Certname)
	if err != nil {
		t.Fatal(err)
	}
	if signed.State != muster.NodeSigned || signed.Serial == "" || signed.SignedAt.IsZero() || signed.RequestFingerprint != "" {
		t.Fatalf("signed node: %+v", signed)
	}
	if !signalled(sub) {
		t.Error("signing did not publish the node on the hub")
	}
	// The certificate is the CA's, for the certname alone, for clients.
	cert, err := pki.ParseCertPEM([]byte(signed.Certificate))
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	_, err = cert.Verify(x509.VerifyOptions{Roots: e.ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	switch {
	case err != nil:
		t.Fatalf("the certificate does not verify with the CA: %v", err)
	case !slices.Equal(cert.DNSNames, []string{n.Certname}) || cert.Subject.CommonName != n.Certname:
		t.Errorf("names %v %q, want %s", cert.DNSNames, cert.Subject.CommonName, n.Certname)
	case pki.FormatSerial(cert.SerialNumber) != signed.Serial || !cert.NotAfter.Equal(signed.CertExpires):
		t.Errorf("serial %s expiry %v, the view says %s %v", pki.FormatSerial(cert.SerialNumber), cert.NotAfter,
			signed.Serial, signed.CertExpires)
	case signed.Fingerprint != pki.FingerprintOf(cert.Raw):
		t.Errorf("fingerprint %s", signed.Fingerprint)
	case cert.NotAfter.Sub(cert.NotBefore) < pki.DefaultAgentLifetime:
		t.Errorf("valid %v to %v: shorter than the default lifetime", cert.NotBefore, cert.NotAfter)
	}
	if revoked, err := e.store.SerialRevoked(e.ctx, signed.Serial); err != nil || revoked {
		t.Fatalf("the new serial is not in force: %v %v", revoked, err)
	}
	if !hasEntry(e.auditActions(), "node.sign node/"+n.Certname) {
		t.Error("no audit entry for the signature")
	}

	// What cannot be signed.
	rev := e.enrollNode("gone.example.com", true)
	if _, err := e.store.RevokeNode(e.ctx, rev.Certname); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, certname string
		status         int
		msg            string
	}{
		{"signed already", n.Certname, http.StatusConflict, "signed already"},
		{"revoked", rev.Certname, http.StatusConflict, "enroll again"},
		{"unknown", "nobody.example.com", http.StatusNotFound, `"nobody.example.com"`},
		{"not a certname", "Web1", http.StatusBadRequest, "certname: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := admin.SignNode(e.ctx, tc.certname)
			if !isStatus(err, tc.status) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %d with %q", err, tc.status, tc.msg)
			}
		})
	}
}

func TestSignNeedsACA(t *testing.T) {
	e := newEnv(t, noCA)
	_, err := e.client(muster.RoleAdmin).SignNode(e.ctx, "web1.example.com")
	if !isStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), "this server has no agent listener (start it with --agent-listen)") {
		t.Fatalf("sign without a CA: %v", err)
	}
	if _, err := e.client(muster.RoleViewer).CA(e.ctx); !isStatus(err, http.StatusNotFound) {
		t.Fatalf("the CA without a CA: %v", err)
	}
}

func TestRevokeNode(t *testing.T) {
	hub := events.New()
	e := newEnv(t, withHub(hub))
	admin := e.client(muster.RoleAdmin)
	signed, pending := e.enrollNode("web1.example.com", true), e.enrollNode("web2.example.com", false)
	all := hub.SubscribeNode("")
	defer all.Close()
	tests := []struct {
		name     string
		certname string
		status   int
	}{
		{"signed", signed.Certname, http.StatusOK},
		{"pending: its request is refused", pending.Certname, http.StatusOK},
		{"revoked already", signed.Certname, http.StatusConflict},
		{"unknown", "nobody.example.com", http.StatusNotFound},
		{"not a certname", "a..b", http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := admin.RevokeNode(e.ctx, tc.certname)
			if tc.status != http.StatusOK {
				if !isStatus(err, tc.status) {
					t.Fatalf("got %v, want %d", err, tc.status)
				}
				return
			}
			if err != nil || v.State != muster.NodeRevoked {
				t.Fatalf("revoke: %+v %v", v, err)
			}
			if !signalled(all) {
				t.Error("revoking did not publish the node on the hub")
			}
			if !hasEntry(e.auditActions(), "node.revoke node/"+tc.certname) {
				t.Error("no audit entry for the revocation")
			}
		})
	}
	if revoked, err := e.store.SerialRevoked(e.ctx, signed.Serial); err != nil || !revoked {
		t.Fatalf("the revoked serial still passes: %v %v", revoked, err)
	}
	if _, err := admin.SignNode(e.ctx, pending.Certname); !isStatus(err, http.StatusConflict) {
		t.Fatalf("signing a refused request: %v", err)
	}
}

func TestRunNodeNow(t *testing.T) {
	hub := events.New()
	e := newEnv(t, withHub(hub))
	op := e.client(muster.RoleOperator)
	n := e.enrollNode("web1.example.com", true)
	// A pull run already waits at the default priority, with another spec.
	older, err := e.store.SubmitJob(e.ctx, muster.Job{Kind: muster.JobPull, Spec: []byte(`{"command":"puppet agent -t"}`),
		Targets: []string{n.Certname}, CreatedBy: "test"})
	if err != nil {
		t.Fatal(err)
	}
	nodeSub, jobs := hub.SubscribeNode(n.Certname), hub.Subscribe(0)
	defer nodeSub.Close()
	defer jobs.Close()
	out, err := op.RunNode(e.ctx, n.Certname)
	if err != nil {
		t.Fatal(err)
	}
	j := out.Job
	if j.Kind != muster.JobPull || !slices.Equal(j.Targets, []string{n.Certname}) || j.Priority != RunNowPriority ||
		j.CreatedBy != "operator-token" || out.Runs[n.Certname] == 0 || len(out.Coalesced) != 0 {
		t.Fatalf("run now: %+v", out)
	}
	if !signalled(nodeSub) || !signalled(jobs) {
		t.Error("run now did not publish the node and the job on the hub")
	}
	if !hasEntry(e.auditActions(), "node.run node/"+n.Certname) {
		t.Error("no audit entry for run now")
	}
	// Asked again while it waits, the same run serves.
	again, err := op.RunNode(e.ctx, n.Certname)
	if err != nil || again.Runs[n.Certname] != out.Runs[n.Certname] || !slices.Equal(again.Coalesced, []string{n.Certname}) {
		t.Fatalf("run now twice: %+v %v", again, err)
	}
	// The node's agent claims the run-now run first; a server never does.
	if runs, err := e.store.ClaimRuns(e.ctx, muster.ClaimParams{Server: "s", Limit: 10, LeaseTTL: time.Minute}); err != nil || len(runs) != 0 {
		t.Fatalf("a server claimed pull runs: %v %v", runs, err)
	}
	run, ok, err := e.store.ClaimNodeRun(e.ctx, muster.NodeClaim{Certname: n.Certname, Owner: "agent:" + n.Certname, LeaseTTL: time.Minute, Now: time.Now()})
	if err != nil || !ok || run.ID != out.Runs[n.Certname] || run.Kind != muster.JobPull {
		t.Fatalf("the agent claimed %+v %v %v, want run %d (not the older job %d's)", run, ok, err,
			out.Runs[n.Certname], older.Job.ID)
	}

	pending, revoked := e.enrollNode("web2.example.com", false), e.enrollNode("web3.example.com", true)
	if _, err := e.store.RevokeNode(e.ctx, revoked.Certname); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, certname string
		status         int
		msg            string
	}{
		{"pending", pending.Certname, http.StatusNotFound, "web2.example.com is pending"},
		{"revoked", revoked.Certname, http.StatusNotFound, "web3.example.com is revoked"},
		{"unknown", "nobody.example.com", http.StatusNotFound, `"nobody.example.com"`},
		{"not a certname", "web*", http.StatusBadRequest, "certname: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := op.RunNode(e.ctx, tc.certname)
			if !isStatus(err, tc.status) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %d with %q", err, tc.status, tc.msg)
			}
		})
	}
}

func TestRunManyNodesNow(t *testing.T) {
	hub := events.New()
	// The server's inventory has a group "agents" of two nodes, one of
	// which is not enrolled.
	groups := func(ctx context.Context, who muster.Token, spec string) ([]string, error) {
		if spec == "agents" {
			return []string{"b1.example.com", "z9.example.com"}, nil
		}
		return resolve(ctx, who, spec)
	}
	e := newEnv(t, withHub(hub), func(c *Config) { c.Resolve, c.MaxTargetsPerJob = groups, 3 })
	for _, name := range []string{"a1.example.com", "a2.example.com", "b1.example.com", "c1.example.com"} {
		e.enrollNode(name, true)
	}
	e.enrollNode("a3.example.com", false)
	all := hub.SubscribeNode("")
	defer all.Close()
	tests := []struct {
		name    string
		targets Targets
		want    []string // the job's targets; nil: refused
		status  int
	}{
		{"a glob: signed nodes only", Targets{Spec: "a*.example.com"}, []string{"a1.example.com", "a2.example.com"}, 0},
		{"a list", Targets{Nodes: []string{"c1.example.com", "a1.example.com,c1.example.com"}}, []string{"c1.example.com", "a1.example.com"}, 0},
		{"a group", Targets{Spec: "agents"}, []string{"b1.example.com"}, 0},
		{"everything", Targets{Spec: "**"}, nil, http.StatusBadRequest},
		{"a pending node", Targets{Spec: "a3.example.com"}, nil, http.StatusBadRequest},
		{"no match", Targets{Spec: "a1.example.com q*.example.com"}, nil, http.StatusBadRequest},
		{"a file", Targets{Spec: "@nodes.txt"}, nil, http.StatusBadRequest},
		{"nothing", Targets{Spec: " , "}, nil, http.StatusBadRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := e.client(muster.RoleOperator).RunNodes(e.ctx, tc.targets)
			if tc.want == nil {
				if !isStatus(err, tc.status) {
					t.Fatalf("got %v, want %d", err, tc.status)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Job.Targets, tc.want) || out.Job.Kind != muster.JobPull || out.Job.Priority != RunNowPriority {
				t.Fatalf("job %+v, want targets %v", out.Job, tc.want)
			}
			if !signalled(all) {
				t.Error("no node published on the hub")
			}
			if !hasEntry(e.auditActions(), fmt.Sprintf("node.run job/%d", out.Job.ID)) {
				t.Error("no audit entry")
			}
		})
	}
}

func TestListNodes(t *testing.T) {
	checkin := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	info := func(certname string) (NodeLive, bool) {
		if certname != "b.example.com" {
			return NodeLive{}, false
		}
		return NodeLive{LastCheckIn: checkin, NextCheckIn: checkin.Add(time.Minute), NextSlot: checkin.Add(time.Hour),
			Backend: "puppet1"}, true
	}
	e := newEnv(t, func(c *Config) { c.NodeInfo = info })
	e.enrollNode("c.example.com", false)
	e.enrollNode("a.example.com", true)
	e.enrollNode("b.example.com", true)
	e.enrollNode("d.example.com", true)
	viewer := e.client(muster.RoleViewer)
	names := func(l NodeList) []string {
		var out []string
		for _, n := range l.Nodes {
			out = append(out, n.Certname)
		}
		return out
	}
	tests := []struct {
		name      string
		opts      ListNodesOptions
		want      []string
		nextAfter string
	}{
		{"all", ListNodesOptions{}, []string{"a.example.com", "b.example.com", "c.example.com", "d.example.com"}, ""},
		{"pending", ListNodesOptions{State: muster.NodePending}, []string{"c.example.com"}, ""},
		{"signed, a page", ListNodesOptions{State: muster.NodeSigned, Limit: 2}, []string{"a.example.com", "b.example.com"}, "b.example.com"},
		{"signed, the next page", ListNodesOptions{State: muster.NodeSigned, Limit: 2, After: "b.example.com"}, []string{"d.example.com"}, ""},
		{"a last full page", ListNodesOptions{Limit: 2, After: "b.example.com"}, []string{"c.example.com", "d.example.com"}, ""},
		{"revoked", ListNodesOptions{State: muster.NodeRevoked}, nil, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := viewer.ListNodes(e.ctx, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(l), tc.want) || l.NextAfter != tc.nextAfter {
				t.Fatalf("got %v next %q, want %v next %q", names(l), l.NextAfter, tc.want, tc.nextAfter)
			}
			for _, n := range l.Nodes {
				if n.Certificate != "" {
					t.Errorf("%s: a list shows no certificate", n.Certname)
				}
			}
		})
	}
	// The live data of the hook.
	b, err := viewer.Node(e.ctx, "b.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if b.Live == nil || b.Live.Backend != "puppet1" || !b.Live.NextSlot.Equal(checkin.Add(time.Hour)) || !b.LastCheckIn.Equal(checkin) {
		t.Fatalf("live data: %+v %+v", b, b.Live)
	}
	if a, err := viewer.Node(e.ctx, "a.example.com"); err != nil || a.Live != nil || a.Certificate == "" {
		t.Fatalf("a node the hook does not know: %+v %v", a, err)
	}
	for _, q := range []string{"state=lost", "limit=0", "limit=10001", "limit=x"} {
		r := e.doJSON("GET", "/api/v1/nodes?"+q, e.tokens[muster.RoleViewer], nil)
		if r.status != http.StatusBadRequest {
			t.Errorf("%s: status %d: %s", q, r.status, r.body)
		}
	}
	_, err = viewer.Node(e.ctx, "nobody.example.com")
	if !isStatus(err, http.StatusNotFound) || !strings.Contains(err.Error(), `"nobody.example.com"`) {
		t.Fatalf("unknown node: %v", err)
	}
}

func TestGetCA(t *testing.T) {
	e := newEnv(t)
	v, err := e.client(muster.RoleViewer).CA(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := pki.ParseCertPEM([]byte(v.Certificate))
	if err != nil {
		t.Fatal(err)
	}
	if !cert.Equal(e.ca.Cert()) || v.Fingerprint != e.ca.Fingerprint() || pki.VerifyFingerprint(cert.Raw, v.Fingerprint) != nil ||
		!v.NotAfter.Equal(cert.NotAfter) || v.Subject == "" {
		t.Fatalf("CA view %+v", v)
	}
}
