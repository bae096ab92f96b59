package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/muster-run/muster"
)

// fileResolver resolves like the server's resolver once did: a token
// "@path" reads node names from a file on the server's disk. The API must
// refuse such tokens before they reach it.
type fileResolver struct {
	mu    sync.Mutex
	specs []string
}

func (f *fileResolver) resolve(ctx context.Context, who muster.Token, spec string) ([]string, error) {
	f.mu.Lock()
	f.specs = append(f.specs, spec)
	f.mu.Unlock()
	var out []string
	for _, tok := range strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' }) {
		if p, ok := strings.CutPrefix(tok, "@"); ok {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			out = append(out, strings.Fields(string(b))...)
			continue
		}
		more, err := resolve(ctx, who, tok)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

func TestSubmitRefusesFileTargets(t *testing.T) {
	secretFile := filepath.Join(t.TempDir(), "admin.token")
	const secret = "mst_SECRET-FILE-CONTENT"
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fr := &fileResolver{}
	e := newEnv(t, func(c *Config) { c.Resolve = fr.resolve })
	plain := newEnv(t, func(c *Config) { c.Resolve = nil })
	tests := []struct {
		name    string
		env     *env
		targets any
		bad     string // the token named in the message
	}{
		{"spec", e, "@" + secretFile, "@" + secretFile},
		{"after a name", e, "web1,@" + secretFile, "@" + secretFile},
		{"after a space", e, "web1 @" + secretFile, "@" + secretFile},
		{"after a tab and comma", e, "web1,\t@" + secretFile + ",db1", "@" + secretFile},
		{"relative", e, "@admin.token", "@admin.token"},
		{"list entry", e, []string{"web1", "@" + secretFile}, "@" + secretFile},
		{"list entry with a spec", e, []string{"web1", "db1, @" + secretFile}, "@" + secretFile},
		{"without a resolver", plain, "web1,@" + secretFile, "@" + secretFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := map[string]any{"kind": "command", "targets": tc.targets, "spec": map[string]any{"command": "uptime"}}
			r := tc.env.doJSON("POST", "/api/v1/jobs", tc.env.tokens[muster.RoleOperator], body)
			if strings.Contains(r.body, "SECRET-FILE-CONTENT") {
				t.Fatalf("the answer shows the file's content: %d %s", r.status, r.body)
			}
			b := errorOf(t, r)
			want := "targets: " + strconvQuote(tc.bad) + " is a client-side file reference"
			if r.status != 400 || b.Error.Code != CodeInvalid || !strings.HasPrefix(b.Error.Message, want) ||
				!strings.Contains(b.Error.Message, "the muster CLI expands @file before submitting") {
				t.Fatalf("got %d %s %q, want 400 %s %q...", r.status, b.Error.Code, b.Error.Message, CodeInvalid, want)
			}
		})
	}
	fr.mu.Lock()
	for _, s := range fr.specs {
		if strings.Contains(s, "@") {
			t.Errorf("Resolve was called with %q", s)
		}
	}
	fr.mu.Unlock()
	for _, ev := range []*env{e, plain} {
		if jobs, _ := ev.store.ListJobs(ev.ctx, muster.JobFilter{}); len(jobs) != 0 {
			t.Errorf("@file targets queued %d jobs", len(jobs))
		}
	}
	// An '@' inside a token is not a file reference.
	ok := e.doJSON("POST", "/api/v1/jobs", e.tokens[muster.RoleOperator], commandJob("web1", "echo a@b"))
	if ok.status != 201 {
		t.Fatalf("a plain job: %d %s", ok.status, ok.body)
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

// callerResolver is a resolver that, like the server's, lets only admins
// use local targets, and fails on demand.
type callerResolver struct {
	mu      sync.Mutex
	callers []string // "name/role" of each call
}

func (c *callerResolver) resolve(ctx context.Context, who muster.Token, spec string) ([]string, error) {
	c.mu.Lock()
	c.callers = append(c.callers, who.Name+"/"+string(who.Role))
	c.mu.Unlock()
	switch spec {
	case "local://":
		if who.Role != muster.RoleAdmin {
			return nil, Forbidden("local targets run on the server itself: they need the admin role "+
				"(token %q has the %s role) and a server started with --allow-local-targets", who.Name, who.Role)
		}
		return []string{"localhost"}, nil
	case "wrapped-forbidden":
		return nil, fmt.Errorf("group ops: %w", ErrForbidden)
	case "invalid":
		return nil, muster.Errorf(muster.KindInvalid, "invalid target spec %q: unclosed \"[\"", "web[")
	case "plain error":
		return nil, errors.New("unknown group \"mail\"")
	case "internal":
		return nil, muster.Errorf(muster.KindInternal, "the inventory is not loaded (INTERNAL-DETAIL)")
	}
	return resolve(ctx, who, spec)
}

// TestSubmitResolveCaller: Resolve gets the caller's token, and its errors
// map to 403 (ErrForbidden), 500 (muster/exception-error) or 400.
func TestSubmitResolveCaller(t *testing.T) {
	cr := &callerResolver{}
	e := newEnv(t, func(c *Config) { c.Resolve = cr.resolve })
	tests := []struct {
		name    string
		role    muster.Role
		targets any
		status  int
		code    string
		msg     string // the message starts with it
	}{
		{"operator, local", muster.RoleOperator, "local://", 403, CodeForbidden,
			`targets: local targets run on the server itself: they need the admin role (token "operator-token" has the operator role)`},
		{"operator, local in a list", muster.RoleOperator, []string{"web1", "local://"}, 403, CodeForbidden, "targets: local targets"},
		{"admin, local", muster.RoleAdmin, "local://", 201, "", ""},
		{"wrapped ErrForbidden", muster.RoleOperator, "wrapped-forbidden", 403, CodeForbidden, "targets: group ops: not allowed"},
		{"invalid input", muster.RoleOperator, "invalid", 400, CodeInvalid, `targets: invalid target spec "web["`},
		{"error without a kind", muster.RoleOperator, "plain error", 400, CodeInvalid, `targets: unknown group "mail"`},
		{"internal error", muster.RoleOperator, "internal", 500, CodeInternal, "internal server error"},
		{"operator, inventory", muster.RoleOperator, "web*", 201, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cr.mu.Lock()
			cr.callers = nil
			cr.mu.Unlock()
			body := map[string]any{"kind": "command", "targets": tc.targets, "spec": map[string]any{"command": "id"}}
			r := e.doJSON("POST", "/api/v1/jobs", e.tokens[tc.role], body)
			if r.status != tc.status {
				t.Fatalf("got %d %s, want %d", r.status, r.body, tc.status)
			}
			cr.mu.Lock()
			callers := cr.callers
			cr.mu.Unlock()
			if want := string(tc.role) + "-token/" + string(tc.role); len(callers) == 0 || callers[0] != want {
				t.Errorf("Resolve saw callers %v, want %s", callers, want)
			}
			if tc.status == 201 {
				return
			}
			b := errorOf(t, r)
			if b.Error.Code != tc.code || !strings.HasPrefix(b.Error.Message, tc.msg) {
				t.Fatalf("got %s %q, want %s %q...", b.Error.Code, b.Error.Message, tc.code, tc.msg)
			}
			if strings.Contains(r.body, "INTERNAL-DETAIL") {
				t.Errorf("an internal error's details reached the client: %s", r.body)
			}
		})
	}
	if !strings.Contains(e.logs.String(), "INTERNAL-DETAIL") {
		t.Error("the internal error is not in the server log")
	}
	jobs, _ := e.store.ListJobs(e.ctx, muster.JobFilter{})
	if len(jobs) != 2 {
		t.Errorf("%d jobs queued, want 2 (admin's local job and web*)", len(jobs))
	}
	// The forbidden answer is documented.
	r := e.doJSON("POST", "/api/v1/jobs", e.tokens[muster.RoleOperator], commandJob("local://", "id"))
	checkResponse(t, loadDoc(t), route{Method: "POST", Path: "/api/v1/jobs"}, r)
}

// TestPrepareForbidden: a Prepare error matching ErrForbidden is a 403.
func TestPrepareForbidden(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.Prepare = func(context.Context, muster.Token, muster.JobKind, *muster.JobSpec) error {
			return Forbidden("run_as root needs the admin role")
		}
	})
	r := e.doJSON("POST", "/api/v1/jobs", e.tokens[muster.RoleOperator], commandJob("web1", "id"))
	if b := errorOf(t, r); r.status != 403 || b.Error.Code != CodeForbidden || b.Error.Message != "spec: run_as root needs the admin role" {
		t.Fatalf("got %d %s %q", r.status, b.Error.Code, b.Error.Message)
	}
}
