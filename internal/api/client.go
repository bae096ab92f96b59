package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/muster-run/muster"
)

// APIError is an error answer from the server.
type APIError struct {
	Status  int    // HTTP status
	Code    string // CodeInvalid, CodeUnauthorized, ...
	Message string // the server's message, meant for a person
	Op      string // what the client was doing ("server refused the job", "get job 42")
	// RetryAfter is the Retry-After of a 429 (CodeRateLimited) answer: how
	// long to wait before trying again; 0 when the server gave none.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	op := e.Op
	if op == "" {
		op = "muster server"
	}
	return fmt.Sprintf("%s: %s (%d)", op, e.Message, e.Status)
}

// Is lets errors.Is match muster.ErrNotFound (404) and muster.ErrInvalid
// (400).
func (e *APIError) Is(target error) bool {
	return target == muster.ErrNotFound && e.Status == http.StatusNotFound ||
		target == muster.ErrInvalid && e.Status == http.StatusBadRequest
}

// Client talks to a muster server's API.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

type clientConfig struct {
	hc        *http.Client
	transport http.RoundTripper
	caFile    string
}

// ClientOption configures a Client.
type ClientOption func(*clientConfig)

// WithHTTPClient uses hc (its Timeout must be zero for Events).
func WithHTTPClient(hc *http.Client) ClientOption { return func(c *clientConfig) { c.hc = hc } }

// WithTransport sends requests through rt.
func WithTransport(rt http.RoundTripper) ClientOption {
	return func(c *clientConfig) { c.transport = rt }
}

// WithCAFile trusts the PEM certificates in path (a server with its own
// CA) instead of the system roots.
func WithCAFile(path string) ClientOption { return func(c *clientConfig) { c.caFile = path } }

// NewClient returns a client of the server at baseURL ("https://host:7420")
// that authenticates with token ("" for Health only).
func NewClient(baseURL, token string, opts ...ClientOption) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("server URL %q: want http://HOST:PORT or https://HOST:PORT", baseURL)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("server URL %q: no user, query or fragment allowed", baseURL)
	}
	var cfg clientConfig
	for _, o := range opts {
		o(&cfg)
	}
	hc := &http.Client{}
	if cfg.hc != nil {
		c := *cfg.hc
		hc = &c
	}
	if cfg.transport != nil {
		hc.Transport = cfg.transport
	}
	if cfg.caFile != "" {
		pem, err := os.ReadFile(cfg.caFile)
		if err != nil {
			return nil, fmt.Errorf("reading the server CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the server CA file %s holds no PEM certificate", cfg.caFile)
		}
		var tr *http.Transport
		switch t := hc.Transport.(type) {
		case nil:
			tr = http.DefaultTransport.(*http.Transport).Clone()
		case *http.Transport:
			tr = t.Clone()
		default:
			return nil, errors.New("a CA file needs an *http.Transport, not a custom transport")
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		hc.Transport = tr
	}
	return &Client{base: u, token: token, hc: hc}, nil
}

// BaseURL is the server's URL.
func (c *Client) BaseURL() string { return c.base.String() }

// newRequest builds a request for path (with query) on the server.
func (c *Client) newRequest(ctx context.Context, method, path string, q url.Values, body any) (*http.Request, error) {
	u := *c.base
	u.Path = c.base.Path + path
	u.RawPath = ""
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "muster/"+muster.Version)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	return req, nil
}

// send performs req and returns the response, or an error for a failed
// request or an error status.
func (c *Client) send(op string, req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("%s: %w", op, ctxErr)
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("%s: cannot connect to the muster server at %s: connection refused "+
				"(is `muster server` running there?)", op, c.BaseURL())
		}
		return nil, fmt.Errorf("%s: cannot reach the muster server at %s: %w", op, c.BaseURL(), err)
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		return nil, readAPIError(op, resp)
	}
	return resp, nil
}

// readAPIError turns an error response into an *APIError.
func readAPIError(op string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var retry time.Duration
	if secs, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 32); err == nil && secs > 0 {
		retry = time.Duration(secs) * time.Second
	}
	var body ErrorBody
	if json.Unmarshal(b, &body) == nil && body.Error.Message != "" {
		return &APIError{Status: resp.StatusCode, Code: body.Error.Code, Message: body.Error.Message, Op: op,
			RetryAfter: retry}
	}
	msg := strings.TrimSpace(string(b))
	if len(msg) > 200 || msg == "" || strings.HasPrefix(msg, "<") {
		msg = http.StatusText(resp.StatusCode)
	}
	return &APIError{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: msg, Op: op,
		RetryAfter: retry}
}

// call does one JSON request and decodes the answer into out.
func (c *Client) call(ctx context.Context, op, method, path string, q url.Values, body, out any) error {
	req, err := c.newRequest(ctx, method, path, q, body)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	resp, err := c.send(op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s: reading the server's answer: %w", op, err)
	}
	return nil
}

// Health checks that the server is up and its store answers.
func (c *Client) Health(ctx context.Context) error {
	return c.call(ctx, "health check", "GET", "/healthz", nil, nil, nil)
}

// Submit queues a job.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (SubmitResponse, error) {
	var out SubmitResponse
	err := c.call(ctx, "submitting the job", "POST", "/api/v1/jobs", nil, req, &out)
	var ae *APIError
	if errors.As(err, &ae) {
		ae.Op = "server refused the job" // it answered; no answer keeps "submitting the job"
	}
	return out, err
}

// ListJobsOptions filters and pages ListJobs; zero values mean any state,
// the newest jobs, and 100 of them.
type ListJobsOptions struct {
	State  muster.JobState
	Before int64 // JobList.NextBefore of the previous page
	Limit  int
}

// ListJobs lists jobs, newest first.
func (c *Client) ListJobs(ctx context.Context, o ListJobsOptions) (JobList, error) {
	q := url.Values{}
	setQuery(q, "state", string(o.State))
	setQuery(q, "before", itoa(o.Before))
	setQuery(q, "limit", itoa(int64(o.Limit)))
	var out JobList
	err := c.call(ctx, "list jobs", "GET", "/api/v1/jobs", q, nil, &out)
	return out, err
}

// Job gets one job.
func (c *Client) Job(ctx context.Context, id int64) (JobView, error) {
	var out JobView
	err := c.call(ctx, fmt.Sprintf("get job %d", id), "GET", jobPath(id, ""), nil, nil, &out)
	return out, err
}

// RunsOptions filters Runs; the zero value lists every run of the job.
type RunsOptions struct {
	States []muster.RunState
	Node   string
	Limit  int
}

// Runs lists a job's runs, by id.
func (c *Client) Runs(ctx context.Context, id int64, o RunsOptions) ([]RunView, error) {
	q := url.Values{}
	var states []string
	for _, s := range o.States {
		states = append(states, string(s))
	}
	setQuery(q, "state", strings.Join(states, ","))
	setQuery(q, "node", o.Node)
	setQuery(q, "limit", itoa(int64(o.Limit)))
	var out RunList
	err := c.call(ctx, fmt.Sprintf("list the runs of job %d", id), "GET", jobPath(id, "/runs"), q, nil, &out)
	return out.Runs, err
}

// Cancel cancels a job: its runs that have not started never will, and its
// running runs are stopped.
func (c *Client) Cancel(ctx context.Context, id int64) (CancelResponse, error) {
	var out CancelResponse
	err := c.call(ctx, fmt.Sprintf("cancel job %d", id), "POST", jobPath(id, "/cancel"), nil, nil, &out)
	return out, err
}

// Bump moves a job's waiting runs to the front of the queue.
func (c *Client) Bump(ctx context.Context, id int64) (JobView, error) {
	var out JobView
	err := c.call(ctx, fmt.Sprintf("bump job %d", id), "POST", jobPath(id, "/bump"), nil, nil, &out)
	return out, err
}

// Retry requeues a job's failed runs (only its run on node, when node is
// not empty); the runs of later jobs that they blocked go back to waiting.
func (c *Client) Retry(ctx context.Context, id int64, node string) (RetryResponse, error) {
	var q url.Values
	if node != "" {
		q = url.Values{"node": {node}}
	}
	var out RetryResponse
	err := c.call(ctx, fmt.Sprintf("retry job %d", id), "POST", jobPath(id, "/retry"), q, nil, &out)
	return out, err
}

// Stats reads the queue's statistics.
func (c *Client) Stats(ctx context.Context) (StatsView, error) {
	var out StatsView
	err := c.call(ctx, "get queue stats", "GET", "/api/v1/stats", nil, nil, &out)
	return out, err
}

// CreateToken makes an API token; the answer's Secret is shown only now.
func (c *Client) CreateToken(ctx context.Context, name string, role muster.Role) (CreatedToken, error) {
	var out CreatedToken
	err := c.call(ctx, "create token", "POST", "/api/v1/tokens", nil, TokenRequest{Name: name, Role: role}, &out)
	return out, err
}

// ListTokens lists every token, live and revoked.
func (c *Client) ListTokens(ctx context.Context) ([]TokenView, error) {
	var out TokenList
	err := c.call(ctx, "list tokens", "GET", "/api/v1/tokens", nil, nil, &out)
	return out.Tokens, err
}

// RevokeToken revokes the live token named name.
func (c *Client) RevokeToken(ctx context.Context, name string) (TokenView, error) {
	var out TokenView
	err := c.call(ctx, fmt.Sprintf("revoke token %q", name), "DELETE", "/api/v1/tokens/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// CreateEnrollToken makes an enrollment token for agents; the answer's
// Secret is shown only now, with the CA fingerprint the agent checks.
func (c *Client) CreateEnrollToken(ctx context.Context, req EnrollTokenRequest) (CreatedEnrollToken, error) {
	var out CreatedEnrollToken
	err := c.call(ctx, "create enrollment token", "POST", "/api/v1/enroll-tokens", nil, req, &out)
	return out, err
}

// ListEnrollTokens lists every enrollment token, live and not.
func (c *Client) ListEnrollTokens(ctx context.Context) ([]EnrollTokenView, error) {
	var out EnrollTokenList
	err := c.call(ctx, "list enrollment tokens", "GET", "/api/v1/enroll-tokens", nil, nil, &out)
	return out.Tokens, err
}

// RevokeEnrollToken revokes the live enrollment token named name.
func (c *Client) RevokeEnrollToken(ctx context.Context, name string) (EnrollTokenView, error) {
	var out EnrollTokenView
	err := c.call(ctx, fmt.Sprintf("revoke enrollment token %q", name), "DELETE",
		"/api/v1/enroll-tokens/"+url.PathEscape(name), nil, nil, &out)
	return out, err
}

// ListNodesOptions filters and pages ListNodes; zero values mean every
// state, from the first certname, and 1000 nodes.
type ListNodesOptions struct {
	State muster.NodeState
	After string // NodeList.NextAfter of the previous page
	Limit int
}

// ListNodes lists pull-mode nodes, by certname.
func (c *Client) ListNodes(ctx context.Context, o ListNodesOptions) (NodeList, error) {
	q := url.Values{}
	setQuery(q, "state", string(o.State))
	setQuery(q, "after", o.After)
	setQuery(q, "limit", itoa(int64(o.Limit)))
	var out NodeList
	err := c.call(ctx, "list nodes", "GET", "/api/v1/nodes", q, nil, &out)
	return out, err
}

// Node gets one node, with its certificate.
func (c *Client) Node(ctx context.Context, certname string) (NodeView, error) {
	var out NodeView
	err := c.call(ctx, fmt.Sprintf("get node %s", certname), "GET", nodePath(certname, ""), nil, nil, &out)
	return out, err
}

// NodeFacts returns the facts a node's agent last uploaded.
func (c *Client) NodeFacts(ctx context.Context, certname string) (NodeFacts, error) {
	var out NodeFacts
	err := c.call(ctx, fmt.Sprintf("get the facts of node %s", certname), "GET", nodePath(certname, "/facts"), nil, nil, &out)
	return out, err
}

// SignNode signs a pending node's certificate request.
func (c *Client) SignNode(ctx context.Context, certname string) (NodeView, error) {
	var out NodeView
	err := c.call(ctx, fmt.Sprintf("sign node %s", certname), "POST", nodePath(certname, "/sign"), nil, nil, &out)
	return out, err
}

// RevokeNode revokes a node's certificate (or refuses a pending request).
func (c *Client) RevokeNode(ctx context.Context, certname string) (NodeView, error) {
	var out NodeView
	err := c.call(ctx, fmt.Sprintf("revoke node %s", certname), "POST", nodePath(certname, "/revoke"), nil, nil, &out)
	return out, err
}

// RunNode queues a pull run of a signed node at the front of the queue;
// its agent claims it at its next check-in.
func (c *Client) RunNode(ctx context.Context, certname string) (SubmitResponse, error) {
	var out SubmitResponse
	err := c.call(ctx, fmt.Sprintf("run node %s", certname), "POST", nodePath(certname, "/run"), nil, nil, &out)
	return out, err
}

// RunNodes queues a pull run, at the front of the queue, of every signed
// node that targets names (certnames, certname globs or groups).
func (c *Client) RunNodes(ctx context.Context, targets Targets) (SubmitResponse, error) {
	var out SubmitResponse
	err := c.call(ctx, "run nodes", "POST", "/api/v1/pull-runs", nil, PullRunRequest{Targets: targets}, &out)
	return out, err
}

// CA gets the server's CA certificate and fingerprint.
func (c *Client) CA(ctx context.Context) (CAView, error) {
	var out CAView
	err := c.call(ctx, "get the CA certificate", "GET", "/api/v1/ca", nil, nil, &out)
	return out, err
}

// AuditOptions filters and pages Audit; zero values mean any actor, the
// newest entries, and 100 of them.
type AuditOptions struct {
	Actor  string
	Before int64
	Limit  int
}

// Audit reads the audit trail, newest first.
func (c *Client) Audit(ctx context.Context, o AuditOptions) (AuditList, error) {
	q := url.Values{}
	setQuery(q, "actor", o.Actor)
	setQuery(q, "before", itoa(o.Before))
	setQuery(q, "limit", itoa(int64(o.Limit)))
	var out AuditList
	err := c.call(ctx, "read the audit trail", "GET", "/api/v1/audit", q, nil, &out)
	return out, err
}

// OpenAPI fetches the API's OpenAPI document.
func (c *Client) OpenAPI(ctx context.Context) (json.RawMessage, error) {
	var out json.RawMessage
	err := c.call(ctx, "get the API description", "GET", "/api/v1/openapi.json", nil, nil, &out)
	return out, err
}

// Events follows a job's event stream, calling fn for each event, until
// the "end" event (then it returns nil), fn returns an error (returned
// as is), ctx is done, or the stream breaks.
func (c *Client) Events(ctx context.Context, id int64, fn func(Event) error) error {
	op := fmt.Sprintf("watch job %d", id)
	req, err := c.newRequest(ctx, "GET", jobPath(id, "/events"), nil, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.send(op, req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		return fmt.Errorf("%s: the server answered %q, not an event stream", op, ct)
	}
	rd := bufio.NewReader(resp.Body)
	var data []byte
	for {
		line, err := rd.ReadBytes('\n')
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("%s: the server closed the event stream before the job finished", op)
			}
			return fmt.Errorf("%s: reading the event stream: %w", op, err)
		}
		line = bytes.TrimRight(line, "\r\n")
		switch {
		case len(line) == 0:
			if len(data) == 0 {
				continue
			}
			var ev Event
			if err := json.Unmarshal(data, &ev); err != nil {
				return fmt.Errorf("%s: bad event from the server: %w", op, err)
			}
			data = data[:0]
			if err := fn(ev); err != nil {
				return err
			}
			if ev.Type == EventEnd {
				return nil
			}
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("data:")):
			if len(data) > 0 {
				data = append(data, '\n')
			}
			data = append(data, bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" "))...)
		}
	}
}

func setQuery(q url.Values, k, v string) {
	if v != "" && v != "0" {
		q.Set(k, v)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// jobPath builds an API path under a job.
func jobPath(id int64, rest string) string { return "/api/v1/jobs/" + itoa(id) + rest }

// nodePath builds an API path under a node.
func nodePath(certname, rest string) string {
	return "/api/v1/nodes/" + url.PathEscape(certname) + rest
}
