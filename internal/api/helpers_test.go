package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/pki"
	"github.com/muster-run/muster/internal/store/sqlite"
)

// inventory is the test server's fleet.
var inventory = []string{"web1", "web2", "web3", "db1", "db2"}

// resolve matches comma-separated globs against inventory.
func resolve(_ context.Context, _ muster.Token, spec string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(spec, ",") {
		p = strings.TrimSpace(p)
		n := 0
		for _, node := range inventory {
			if ok, _ := path.Match(p, node); ok {
				out = append(out, node)
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("no targets match %q", p)
		}
	}
	return out, nil
}

// prepare knows one task, "mod::secret", whose "password" parameter is
// sensitive: it moves it into the secrets, as the real engine does.
func prepare(_ context.Context, _ muster.Token, kind muster.JobKind, spec *muster.JobSpec) error {
	if kind != muster.JobTask {
		return nil
	}
	if spec.Task != "mod::secret" && spec.Task != "mod::echo" {
		return fmt.Errorf("task %q not found", spec.Task)
	}
	if pw, ok := spec.Params["password"]; ok {
		if spec.Secrets == nil {
			spec.Secrets = map[string]string{}
		}
		b, _ := json.Marshal(pw)
		spec.Secrets[muster.SecretParam("password")] = string(b)
		delete(spec.Params, "password")
	}
	return nil
}

// testSealer "seals" into an opaque reference and keeps what it sealed.
type testSealer struct {
	mu     sync.Mutex
	sealed []map[string]string
}

func (s *testSealer) Seal(m map[string]string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealed = append(s.sealed, m)
	return fmt.Sprintf("SEALED-BOX-%d", len(s.sealed)), nil
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// env is one test server on a real SQLite store.
type env struct {
	t      *testing.T
	ctx    context.Context
	store  muster.Store
	srv    *Server
	hs     *httptest.Server
	sealer *testSealer
	logs   *syncBuffer
	tokens map[muster.Role]string // a live token of each role, by role
	ca     *pki.CA                // the server's CA (Config.CA), unless noCA
}

type envOption func(*Config)

func noSealer(c *Config) { c.Sealer = nil }

// noCA starts the server without a CA, as without --agent-listen.
func noCA(c *Config) { c.CA = nil }

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "muster.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ca, _, err := pki.LoadOrCreateCA(filepath.Join(t.TempDir(), "ca"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: ctx, store: st, sealer: &testSealer{}, logs: &syncBuffer{}, tokens: map[muster.Role]string{}}
	cfg := Config{Store: st, Resolve: resolve, Prepare: prepare, Sealer: e.sealer, CA: ca,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	for _, o := range opts {
		o(&cfg)
	}
	e.ca = cfg.CA
	if e.srv, err = NewServer(cfg); err != nil {
		t.Fatal(err)
	}
	e.hs = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.srv.Close()
		e.hs.Close()
	})
	for _, r := range muster.Roles {
		e.tokens[r] = e.mkToken(string(r)+"-token", r)
	}
	return e
}

// mkToken stores a token directly, as the CLI's bootstrap does.
func (e *env) mkToken(name string, role muster.Role) string {
	e.t.Helper()
	secret, hash, err := NewTokenSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.CreateToken(e.ctx, muster.Token{Name: name, Role: role, CreatedBy: "local:test"}, hash); err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// client returns an API client authenticated as role.
func (e *env) client(role muster.Role) *Client {
	e.t.Helper()
	c, err := NewClient(e.hs.URL, e.tokens[role])
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// response is one raw answer.
type response struct {
	status int
	header http.Header
	body   string
}

// do sends a raw request with the given token ("" for none).
func (e *env) do(method, path, token, contentType string, body io.Reader) response {
	e.t.Helper()
	req, err := http.NewRequestWithContext(e.ctx, method, e.hs.URL+path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.send(req)
}

// newReq builds a request with body (if not nil) as JSON.
func (e *env) newReq(method, path string, body any) *http.Request {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, e.hs.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// send performs req and reads the whole answer.
func (e *env) send(req *http.Request) response {
	e.t.Helper()
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, string(b)}
}

// isStatus reports whether err is an *APIError with this status.
func isStatus(err error, status int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == status
}

// doJSON sends v as a JSON body with the given token.
func (e *env) doJSON(method, path, token string, v any) response {
	e.t.Helper()
	req := e.newReq(method, path, v)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.send(req)
}

// submit queues a command job directly through the API.
func (e *env) submit(req SubmitRequest) SubmitResponse {
	e.t.Helper()
	out, err := e.client(muster.RoleOperator).Submit(e.ctx, req)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func commandJob(targets string, cmd string) SubmitRequest {
	return SubmitRequest{Kind: muster.JobCommand, Targets: Targets{Spec: targets}, Spec: muster.JobSpec{Command: cmd}}
}

// errorOf decodes an error body.
func errorOf(t *testing.T, r response) ErrorBody {
	t.Helper()
	var b ErrorBody
	if err := json.Unmarshal([]byte(r.body), &b); err != nil || b.Error.Code == "" {
		t.Fatalf("not an error body (status %d): %q", r.status, r.body)
	}
	return b
}
