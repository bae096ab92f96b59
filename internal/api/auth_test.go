package api

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

// example makes a fresh request for a route: its path and JSON body.
type example func(e *env) (path string, body any)

var exampleSeq atomic.Int64

// routeExamples holds a request for every route that succeeds when the
// caller's role is high enough. A test fails if a route has none.
var routeExamples = map[string]example{
	"GET /healthz":             fixed("/healthz"),
	"GET /metrics":             fixed("/metrics"),
	"GET /api/v1/openapi.json": fixed("/api/v1/openapi.json"),
	"POST /api/v1/jobs": func(*env) (string, any) {
		return "/api/v1/jobs", exampleSubmit()
	},
	"GET /api/v1/jobs": fixed("/api/v1/jobs?limit=5"),
	"GET /api/v1/jobs/{id}": func(e *env) (string, any) {
		return fmt.Sprintf("/api/v1/jobs/%d", e.newJob(false)), nil
	},
	"GET /api/v1/jobs/{id}/runs": func(e *env) (string, any) {
		return fmt.Sprintf("/api/v1/jobs/%d/runs", e.newJob(false)), nil
	},
	"GET /api/v1/jobs/{id}/fingerprints": func(e *env) (string, any) {
		return fmt.Sprintf("/api/v1/jobs/%d/fingerprints", e.newJob(false)), nil
	},
	"POST /api/v1/jobs/{id}/cancel": func(e *env) (string, any) {
		return fmt.Sprintf("/api/v1/jobs/%d/cancel", e.newJob(false)), nil
	},
	"POST /api/v1/jobs/{id}/bump": func(e *env) (string, any) {
		return fmt.Sprintf("/api/v1/jobs/%d/bump", e.newJob(false)), nil
	},
	"POST /api/v1/jobs/{id}/retry": func(e *env) (string, any) {
		id := e.newJob(false)
		e.finishAll(id, muster.OutcomeFailed)
		return fmt.Sprintf("/api/v1/jobs/%d/retry?node=web1", id), nil
	},
	// A cancelled job has finished, so its stream ends at once.
	"GET /api/v1/jobs/{id}/events": func(e *env) (string, any) {
		return fmt.Sprintf("/api/v1/jobs/%d/events", e.newJob(true)), nil
	},
	"GET /api/v1/stats": fixed("/api/v1/stats"),
	"GET /api/v1/capacity": func(*env) (string, any) {
		return "/api/v1/capacity?target_age=30s&window=5m", nil
	},
	"POST /api/v1/tokens": func(*env) (string, any) {
		return "/api/v1/tokens", TokenRequest{Name: fmt.Sprintf("ci-%d", exampleSeq.Add(1)), Role: muster.RoleViewer}
	},
	"GET /api/v1/tokens": fixed("/api/v1/tokens"),
	"DELETE /api/v1/tokens/{name}": func(e *env) (string, any) {
		name := fmt.Sprintf("doomed-%d", exampleSeq.Add(1))
		e.mkToken(name, muster.RoleViewer)
		return "/api/v1/tokens/" + name, nil
	},
	"GET /api/v1/audit": fixed("/api/v1/audit?limit=10"),
	"POST /api/v1/enroll-tokens": func(*env) (string, any) {
		return "/api/v1/enroll-tokens", EnrollTokenRequest{Name: fmt.Sprintf("enroll-%d", exampleSeq.Add(1)), Uses: 3,
			Expires: Duration(time.Hour), Certnames: "web*.example.com"}
	},
	"GET /api/v1/enroll-tokens": fixed("/api/v1/enroll-tokens"),
	"DELETE /api/v1/enroll-tokens/{name}": func(e *env) (string, any) {
		t, _ := e.mkEnrollToken(1, "")
		return "/api/v1/enroll-tokens/" + t.Name, nil
	},
	"GET /api/v1/nodes": fixed("/api/v1/nodes?limit=10"),
	"GET /api/v1/nodes/{certname}": func(e *env) (string, any) {
		return "/api/v1/nodes/" + e.enrollNode(newCertname(), true).Certname, nil
	},
	"GET /api/v1/nodes/{certname}/facts": func(e *env) (string, any) {
		return "/api/v1/nodes/" + e.enrollNode(newCertname(), true).Certname + "/facts", nil
	},
	"POST /api/v1/nodes/{certname}/sign": func(e *env) (string, any) {
		return "/api/v1/nodes/" + e.enrollNode(newCertname(), false).Certname + "/sign", nil
	},
	"POST /api/v1/nodes/{certname}/revoke": func(e *env) (string, any) {
		return "/api/v1/nodes/" + e.enrollNode(newCertname(), true).Certname + "/revoke", nil
	},
	"POST /api/v1/nodes/{certname}/run": func(e *env) (string, any) {
		return "/api/v1/nodes/" + e.enrollNode(newCertname(), true).Certname + "/run", nil
	},
	"POST /api/v1/pull-runs": func(e *env) (string, any) {
		return "/api/v1/pull-runs", PullRunRequest{Targets: Targets{Nodes: []string{e.enrollNode(newCertname(), true).Certname}}}
	},
	"GET /api/v1/ca": fixed("/api/v1/ca"),
}

func fixed(p string) example { return func(*env) (string, any) { return p, nil } }

// exampleSubmit is a complete, valid submission.
func exampleSubmit() SubmitRequest {
	return SubmitRequest{
		Kind: muster.JobCommand, Targets: Targets{Spec: "web*"},
		Spec:     muster.JobSpec{Command: fmt.Sprintf("uptime # %d", exampleSeq.Add(1)), Env: map[string]string{"LANG": "C"}},
		Priority: 5, Retries: 2, Timeout: Duration(60e9), OnLeaseExpiry: muster.LeaseFail,
	}
}

// newJob submits a fresh one-shot job straight to the store, cancelled
// when asked.
func (e *env) newJob(cancelled bool) int64 {
	e.t.Helper()
	spec := fmt.Sprintf(`{"command":"true # %d"}`, exampleSeq.Add(1))
	res, err := e.store.SubmitJob(e.ctx, muster.Job{Kind: muster.JobCommand, Spec: []byte(spec),
		Targets: []string{"web1", "db1"}, CreatedBy: "test"})
	if err != nil {
		e.t.Fatal(err)
	}
	if cancelled {
		if _, err := e.store.CancelJob(e.ctx, res.Job.ID); err != nil {
			e.t.Fatal(err)
		}
	}
	return res.Job.ID
}

func TestAuthMatrix(t *testing.T) {
	e := newEnv(t)
	revoked := e.mkToken("gone", muster.RoleAdmin)
	if _, err := e.store.RevokeToken(e.ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	random := TokenPrefix + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	type caller struct {
		name   string
		header string // the Authorization header
		role   muster.Role
	}
	callers := []caller{
		{"no token", "", ""},
		{"unknown token", "Bearer " + random, ""},
		{"revoked token", "Bearer " + revoked, ""},
		{"wrong scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+e.tokens[muster.RoleAdmin])), ""},
		{"empty bearer", "Bearer ", ""},
		{"viewer", "Bearer " + e.tokens[muster.RoleViewer], muster.RoleViewer},
		{"operator", "Bearer " + e.tokens[muster.RoleOperator], muster.RoleOperator},
		{"admin", "Bearer " + e.tokens[muster.RoleAdmin], muster.RoleAdmin},
	}
	for _, rt := range routeTable() {
		ex := routeExamples[rt.Pattern()]
		if ex == nil {
			t.Errorf("route %s has no example request", rt.Pattern())
			continue
		}
		for _, c := range callers {
			t.Run(rt.Pattern()+"/"+c.name, func(t *testing.T) {
				p, body := ex(e)
				r := e.doAuth(rt.Method, p, c.header, body)
				switch {
				case rt.Role == "":
					if r.status != http.StatusOK {
						t.Fatalf("unauthenticated route: status %d: %s", r.status, r.body)
					}
				case c.role == "":
					if r.status != http.StatusUnauthorized {
						t.Fatalf("status %d, want 401: %s", r.status, r.body)
					}
					if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
						t.Errorf("no WWW-Authenticate challenge: %v", r.header)
					}
					if errorOf(t, r).Error.Code != CodeUnauthorized {
						t.Errorf("code: %s", r.body)
					}
				case !c.role.Allows(rt.Role):
					if r.status != http.StatusForbidden {
						t.Fatalf("status %d, want 403: %s", r.status, r.body)
					}
					if msg := errorOf(t, r).Error.Message; !strings.Contains(msg, string(rt.Role)) {
						t.Errorf("403 does not name the needed role %s: %q", rt.Role, msg)
					}
				default:
					if r.status < 200 || r.status > 299 {
						t.Fatalf("status %d, want 2xx: %s", r.status, r.body)
					}
				}
			})
		}
	}
	// Failed authentications are logged, without the token.
	logs := e.logs.String()
	if !strings.Contains(logs, "authentication failed") || !strings.Contains(logs, "authorization failed") {
		t.Errorf("auth failures not logged:\n%s", logs)
	}
	for _, secret := range []string{random, revoked, e.tokens[muster.RoleAdmin], e.tokens[muster.RoleViewer]} {
		if strings.Contains(logs, secret) {
			t.Errorf("a token appears in the log")
		}
	}
}

// doAuth sends body as JSON with a raw Authorization header.
func (e *env) doAuth(method, path, authz string, body any) response {
	e.t.Helper()
	req := e.newReq(method, path, body)
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return e.send(req)
}

func TestTokenHelpers(t *testing.T) {
	a, ha, err := NewTokenSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := NewTokenSecret()
	if a == b || !strings.HasPrefix(a, TokenPrefix) || len(a) != len(TokenPrefix)+43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(a, TokenPrefix)); err != nil || len(raw) != 32 {
		t.Fatalf("token body: %v, %d bytes", err, len(raw))
	}
	if string(HashToken(a)) != string(ha) || len(ha) != 32 {
		t.Fatal("HashToken does not match NewTokenSecret's hash")
	}
}

func TestTokenEndpoints(t *testing.T) {
	e := newEnv(t)
	c := e.client(muster.RoleAdmin)
	created, err := c.CreateToken(e.ctx, "deploy-bot", muster.RoleOperator)
	if err != nil {
		t.Fatal(err)
	}
	if created.Token.Name != "deploy-bot" || created.Token.Role != muster.RoleOperator || created.Token.CreatedBy != "admin-token" {
		t.Fatalf("created %+v", created.Token)
	}
	// The new secret works, with its role.
	bot, _ := NewClient(e.hs.URL, created.Secret)
	if _, err := bot.Submit(e.ctx, exampleSubmit()); err != nil {
		t.Fatalf("new token cannot submit: %v", err)
	}
	// Duplicate live names conflict; bad names and roles are 400s.
	for _, tc := range []struct {
		body   string
		status int
		want   string
	}{
		{`{"name":"deploy-bot","role":"viewer"}`, 409, "already exists"},
		{`{"name":"","role":"viewer"}`, 400, "name:"},
		{`{"name":"local:root","role":"viewer"}`, 400, "name:"},
		{`{"name":"x","role":"root"}`, 400, "role:"},
		{`{"name":"x","role":"viewer","ttl":5}`, 400, "ttl"},
		{`{"name":7,"role":"viewer"}`, 400, "name: want a string"},
	} {
		r := e.do("POST", "/api/v1/tokens", e.tokens[muster.RoleAdmin], "application/json", strings.NewReader(tc.body))
		if r.status != tc.status || !strings.Contains(errorOf(t, r).Error.Message, tc.want) {
			t.Errorf("%s: %d %s, want %d %q", tc.body, r.status, r.body, tc.status, tc.want)
		}
	}
	list, err := c.ListTokens(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	r := e.do("GET", "/api/v1/tokens", e.tokens[muster.RoleAdmin], "", nil)
	if strings.Contains(r.body, created.Secret) || strings.Contains(r.body, "hash") {
		t.Fatalf("token list shows secrets: %s", r.body)
	}
	if len(list) != 4 {
		t.Fatalf("tokens: %+v", list)
	}
	if _, err := c.RevokeToken(e.ctx, "deploy-bot"); err != nil {
		t.Fatal(err)
	}
	if _, err := bot.Stats(e.ctx); !isStatus(err, 401) {
		t.Fatalf("revoked token still works: %v", err)
	}
	if _, err := c.RevokeToken(e.ctx, "deploy-bot"); !isStatus(err, 404) {
		t.Fatalf("second revoke: %v", err)
	}
	// A new token may take a revoked one's name.
	if _, err := c.CreateToken(e.ctx, "deploy-bot", muster.RoleViewer); err != nil {
		t.Fatal(err)
	}
}
