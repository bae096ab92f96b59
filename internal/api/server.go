// Package api is muster's HTTP API: the server side (a JSON API over
// the queue Store, with bearer-token roles, an audit trail, server-sent
// events, stats and Prometheus metrics) and the Go client the CLI uses.
//
// It is an adapter: it talks to the queue only through the Store's jobs,
// auth and nodes sides (muster.Jobs, muster.AuthStore and muster.Nodes),
// to the inventory and task engine only through the Config callbacks, and
// to the agent listener through the CA it is given and Config.NodeInfo.
package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/pki"
)

// MaxBodyBytes bounds a request body.
const MaxBodyBytes = 8 << 20

// Sealer encrypts a job's secrets into the opaque JobSpec.Sealed string.
type Sealer interface {
	Seal(secrets map[string]string) (string, error)
}

// Store is what the API needs of the queue's store: its jobs side, its
// tokens and audit trail, and pull mode's nodes and enrollment tokens. A
// muster.Store is one.
type Store interface {
	muster.Jobs
	muster.AuthStore
	muster.Nodes
	muster.Changes
}

// Config configures a Server. Store is required; everything else has a
// default.
type Config struct {
	Store Store
	// Resolve turns a target spec ("web*,db1") into node names with the
	// server's inventory, for the caller who: the authenticated token, so
	// that it can refuse targets the caller's role may not use (such as
	// local targets). The API has already refused "@file" tokens, which
	// only the CLI expands; Resolve must not read files either. An error
	// that matches ErrForbidden (see Forbidden) is answered 403, one of
	// kind muster/exception-error is an internal error (500, logged), and
	// any other (muster/invalid-input and errors without a kind) goes back
	// to the client as 400. Nil takes a spec as a comma-separated list of
	// node names.
	Resolve func(ctx context.Context, who muster.Token, spec string) ([]string, error)
	// Prepare validates a submission against the server's tasks and plans
	// and may move sensitive parameters into spec.Secrets. Its error goes
	// back to the client: 403 when it matches ErrForbidden, else 400. Nil
	// means no extra checks. who is the authenticated caller, so Prepare
	// can grant what only some roles may do (spec.LocalTargets).
	Prepare func(ctx context.Context, who muster.Token, kind muster.JobKind, spec *muster.JobSpec) error
	// Inventory, when set, names the inventory file targets are resolved
	// with, for the submit response ("" for none).
	Inventory func() string
	// Sealer seals spec.Secrets into spec.Sealed before the spec is
	// stored. Without one, a submission carrying secrets is refused.
	Sealer Sealer
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Metrics, when set, is used instead of a new NewMetrics(Store) (the
	// dispatcher may need it before the server exists).
	Metrics *Metrics
	// Events, when set, is the hub that tells an event stream when its
	// job changed (the dispatcher publishes claims, completions and live
	// output; the API publishes submits, cancels and bumps), so a stream
	// reads the store when told rather than on a timer.
	Events *events.Hub
	// SignalNodes, when set, carries "these nodes have something to look
	// at" (a run to claim, a certificate signed) to every server on a
	// shared database (PostgreSQL's NOTIFY), where agents may hold their
	// check-ins; each server's hub hears it back from its store. When nil,
	// the hub is told directly.
	SignalNodes func(ctx context.Context, certnames ...string) error
	// EventInterval is how often an event stream reads the store without
	// being told: every 250ms without a hub, every 2s with one (changes
	// made by other servers on a shared database arrive this way).
	EventInterval time.Duration
	// MaxTargetsPerJob, when above 0, refuses (400) a submission whose
	// targets resolve to more nodes than this, before anything is stored
	// (muster server --max-targets-per-job).
	MaxTargetsPerJob int
	// MaxJobsPerMinute, when above 0, holds each API token to this many
	// accepted jobs a minute (muster server --max-jobs-per-minute): a
	// token bucket per token name holds MaxJobsPerMinute jobs, so that
	// many may come at once, and refills at MaxJobsPerMinute a minute. A
	// submission that finds its token's bucket empty is refused with 429
	// and a Retry-After header; refused submissions (for any reason) take
	// nothing from the bucket. The buckets live in this process: with
	// several servers on one database each enforces the limit on its own,
	// so a token may submit up to MaxJobsPerMinute jobs a minute to each.
	MaxJobsPerMinute int
	// CA is the server's certificate authority, set when the server has an
	// agent listener (muster server --agent-listen). It signs pending
	// nodes' requests (POST /api/v1/nodes/{certname}/sign), and its
	// fingerprint goes out with every new enrollment token. Without it,
	// those routes and GET /api/v1/ca answer 404.
	CA *pki.CA
	// CertLifetime is how long the certificates the API signs are valid;
	// default pki.DefaultAgentLifetime.
	CertLifetime time.Duration
	// NodeInfo, when set, tells what the agent listener knows of a node
	// beyond the store (its latest idle check-in, when it checks in and
	// runs next, its backend); false when it knows nothing. The node views
	// of GET /api/v1/nodes show it. It is called once per node shown, so
	// it must be quick and must not block.
	NodeInfo func(certname string) (NodeLive, bool)
	// Capacity is what GET /api/v1/capacity and the muster_capacity_*
	// gauges know of the servers' slots (see capacity.go).
	Capacity CapacityConfig
}

// ErrForbidden is what an error returned by Config.Resolve or
// Config.Prepare matches (errors.Is) to be answered 403 Forbidden: the
// caller's role may not do what the request asks. It is the domain's
// muster.ErrForbidden, so the engine can refuse without knowing HTTP.
var ErrForbidden = muster.ErrForbidden

// Forbidden returns an error that matches ErrForbidden (muster.Forbidden).
func Forbidden(format string, args ...any) error { return muster.Forbidden(format, args...) }

// Server is the HTTP API. It is an http.Handler.
type Server struct {
	cfg     Config
	store   Store
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics
	mux     *http.ServeMux
	jobRate *rateLimiter // nil without Config.MaxJobsPerMinute

	closeOnce sync.Once
	closed    chan struct{}
}

// handlerFunc serves one route. who is the caller's token (zero on the
// unauthenticated route). A returned error becomes the error response.
type handlerFunc func(s *Server, w http.ResponseWriter, r *http.Request, who muster.Token) error

// route is one endpoint. The same table registers the mux and is checked
// against openapi.json by the tests.
type route struct {
	Method string
	Path   string
	Role   muster.Role // needed role; "" for the one unauthenticated route
	Body   bool        // takes a JSON body
	Handle handlerFunc
}

// Pattern is the route's ServeMux pattern.
func (rt route) Pattern() string { return rt.Method + " " + rt.Path }

func routeTable() []route {
	return []route{
		{"GET", "/healthz", "", false, (*Server).handleHealth},
		{"GET", "/metrics", muster.RoleViewer, false, (*Server).handleMetrics},
		{"GET", "/api/v1/openapi.json", muster.RoleViewer, false, (*Server).handleOpenAPI},
		{"POST", "/api/v1/jobs", muster.RoleOperator, true, (*Server).handleSubmit},
		{"GET", "/api/v1/jobs", muster.RoleViewer, false, (*Server).handleListJobs},
		{"GET", "/api/v1/jobs/{id}", muster.RoleViewer, false, (*Server).handleGetJob},
		{"GET", "/api/v1/jobs/{id}/runs", muster.RoleViewer, false, (*Server).handleRuns},
		{"GET", "/api/v1/jobs/{id}/fingerprints", muster.RoleViewer, false, (*Server).handleFingerprints},
		{"POST", "/api/v1/jobs/{id}/cancel", muster.RoleOperator, false, (*Server).handleCancel},
		{"POST", "/api/v1/jobs/{id}/bump", muster.RoleOperator, false, (*Server).handleBump},
		{"POST", "/api/v1/jobs/{id}/retry", muster.RoleOperator, false, (*Server).handleRetry},
		{"GET", "/api/v1/jobs/{id}/events", muster.RoleViewer, false, (*Server).handleEvents},
		{"GET", "/api/v1/stats", muster.RoleViewer, false, (*Server).handleStats},
		{"GET", "/api/v1/capacity", muster.RoleViewer, false, (*Server).handleCapacity},
		{"POST", "/api/v1/tokens", muster.RoleAdmin, true, (*Server).handleCreateToken},
		{"GET", "/api/v1/tokens", muster.RoleAdmin, false, (*Server).handleListTokens},
		{"DELETE", "/api/v1/tokens/{name}", muster.RoleAdmin, false, (*Server).handleRevokeToken},
		{"GET", "/api/v1/audit", muster.RoleAdmin, false, (*Server).handleAudit},
		{"POST", "/api/v1/enroll-tokens", muster.RoleAdmin, true, (*Server).handleCreateEnrollToken},
		{"GET", "/api/v1/enroll-tokens", muster.RoleAdmin, false, (*Server).handleListEnrollTokens},
		{"DELETE", "/api/v1/enroll-tokens/{name}", muster.RoleAdmin, false, (*Server).handleRevokeEnrollToken},
		{"GET", "/api/v1/nodes", muster.RoleViewer, false, (*Server).handleListNodes},
		{"GET", "/api/v1/nodes/{certname}", muster.RoleViewer, false, (*Server).handleGetNode},
		{"GET", "/api/v1/nodes/{certname}/facts", muster.RoleViewer, false, (*Server).handleNodeFacts},
		{"POST", "/api/v1/nodes/{certname}/sign", muster.RoleAdmin, false, (*Server).handleSignNode},
		{"POST", "/api/v1/nodes/{certname}/revoke", muster.RoleAdmin, false, (*Server).handleRevokeNode},
		{"POST", "/api/v1/nodes/{certname}/run", muster.RoleOperator, false, (*Server).handleRunNode},
		{"POST", "/api/v1/pull-runs", muster.RoleOperator, true, (*Server).handlePullRuns},
		{"GET", "/api/v1/ca", muster.RoleViewer, false, (*Server).handleCA},
	}
}

// NewServer builds the API server.
func NewServer(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: Config.Store is required")
	}
	if cfg.MaxTargetsPerJob < 0 || cfg.MaxJobsPerMinute < 0 || cfg.CertLifetime < 0 {
		return nil, errors.New("api: Config.MaxTargetsPerJob, Config.MaxJobsPerMinute and Config.CertLifetime must not be negative")
	}
	if cfg.CertLifetime == 0 {
		cfg.CertLifetime = pki.DefaultAgentLifetime
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, now: cfg.Now, metrics: cfg.Metrics,
		mux: http.NewServeMux(), closed: make(chan struct{})}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.metrics == nil {
		s.metrics = NewMetrics(cfg.Store)
	}
	if s.cfg.EventInterval <= 0 && s.cfg.Events != nil {
		s.cfg.EventInterval = 2 * time.Second
	}
	if s.cfg.EventInterval <= 0 {
		s.cfg.EventInterval = 250 * time.Millisecond
	}
	if cfg.MaxJobsPerMinute > 0 {
		s.jobRate = newRateLimiter(cfg.MaxJobsPerMinute, time.Minute)
	}
	s.metrics.registerCapacity(cfg.Store, cfg.Capacity)
	s.metrics.setLimit(limitTargetsPerJob, cfg.MaxTargetsPerJob)
	s.metrics.setLimit(limitJobsPerMinute, cfg.MaxJobsPerMinute)
	methods := map[string][]string{}
	var paths []string
	for _, rt := range routeTable() {
		s.mux.Handle(rt.Pattern(), s.wrap(rt))
		if methods[rt.Path] == nil {
			paths = append(paths, rt.Path)
		}
		methods[rt.Path] = append(methods[rt.Path], rt.Method)
	}
	for _, p := range paths {
		allow := strings.Join(methods[p], ", ")
		if slices.Contains(methods[p], "GET") {
			allow += ", HEAD"
		}
		s.mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			s.metrics.countRequest("unmatched", http.StatusMethodNotAllowed)
			writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed,
				fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, p, allow))
		})
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.metrics.countRequest("unmatched", http.StatusNotFound)
		writeError(w, http.StatusNotFound, CodeNotFound, fmt.Sprintf("no such endpoint: %s", r.URL.Path))
	})
	return s, nil
}

// ServeHTTP serves the API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	s.mux.ServeHTTP(w, r)
}

// Metrics returns the server's metrics, for the dispatcher to feed.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close ends the open event streams (call it before http.Server.Shutdown,
// which otherwise waits for them). The server keeps answering other
// requests.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { close(s.closed) })
	return nil
}

// statusWriter remembers the response status.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// wrap adds metrics, panic recovery, authentication and body checks.
func (s *Server) wrap(rt route) http.Handler {
	name := rt.Pattern()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		start := time.Now()
		var who muster.Token
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.fail(sw, r, fmt.Errorf("panic: %v", p))
			}
			s.metrics.countRequest(name, sw.status)
			s.log.Debug("http request", "route", name, "status", sw.status, "actor", who.Name,
				"remote", r.RemoteAddr, "duration", time.Since(start))
		}()
		if rt.Role != "" {
			var err error
			if who, err = s.authenticate(r, rt.Role); err != nil {
				s.fail(sw, r, err)
				return
			}
		}
		if rt.Body {
			if err := checkBody(sw, r); err != nil {
				s.fail(sw, r, err)
				return
			}
		}
		if err := rt.Handle(s, sw, r, who); err != nil {
			s.fail(sw, r, err)
		}
	})
}

// checkBody insists on a JSON body within the size limit.
func checkBody(w http.ResponseWriter, r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		if ct == "" {
			ct = "none"
		}
		return &apiError{http.StatusUnsupportedMediaType, CodeUnsupportedMedia,
			fmt.Sprintf("content type %s is not supported: send Content-Type: application/json", ct), nil}
	}
	if r.ContentLength > MaxBodyBytes {
		return &apiError{http.StatusRequestEntityTooLarge, CodeTooLarge,
			fmt.Sprintf("body: %d bytes is larger than the limit of %d bytes", r.ContentLength, MaxBodyBytes), nil}
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	return nil
}

// apiError is an error response.
type apiError struct {
	status  int
	code    string
	msg     string
	headers map[string]string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, CodeInvalid, fmt.Sprintf(format, args...), nil}
}

func notFound(format string, args ...any) *apiError {
	return &apiError{http.StatusNotFound, CodeNotFound, fmt.Sprintf(format, args...), nil}
}

func conflict(format string, args ...any) *apiError {
	return &apiError{http.StatusConflict, CodeConflict, fmt.Sprintf(format, args...), nil}
}

// fail writes err as the response, unless the response has started (an
// event stream), in which case it is only logged. Internal errors are
// logged with a reference that the client sees instead of the details.
func (s *Server) fail(w *statusWriter, r *http.Request, err error) {
	var ae *apiError
	var fe *FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
	case errors.As(err, &mbe):
		ae = &apiError{http.StatusRequestEntityTooLarge, CodeTooLarge,
			fmt.Sprintf("body: larger than the limit of %d bytes", mbe.Limit), nil}
	case errors.As(err, &fe):
		ae = badRequest("%s", fe.Error())
	case errors.Is(err, ErrForbidden):
		ae = &apiError{http.StatusForbidden, CodeForbidden, err.Error(), nil}
	case errors.Is(err, muster.ErrNotFound):
		ae = notFound("not found")
	case r.Context().Err() != nil:
		s.log.Debug("client went away", "route", r.Pattern, "remote", r.RemoteAddr, "err", err)
		return
	default:
		ref := make([]byte, 4)
		_, _ = rand.Read(ref)
		id := hex.EncodeToString(ref)
		s.log.Error("internal error", "ref", id, "route", r.Pattern, "remote", r.RemoteAddr, "err", err)
		ae = &apiError{http.StatusInternalServerError, CodeInternal,
			"internal server error (the server log has the details under ref " + id + ")", nil}
	}
	if w.status != 0 {
		s.log.Warn("error after the response started", "route", r.Pattern, "err", err)
		return
	}
	for k, v := range ae.headers {
		w.Header().Set(k, v)
	}
	writeError(w, ae.status, ae.code, ae.msg)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	var body ErrorBody
	body.Error.Code, body.Error.Message = code, msg
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"internal server error (encoding the response)"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// handleHealth answers "ok" when the store answers.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := s.store.GetJob(ctx, 0); err != nil && !errors.Is(err, muster.ErrNotFound) {
		s.log.Error("health check: store unreachable", "err", err)
		return &apiError{http.StatusServiceUnavailable, CodeUnavailable, "the queue store is unreachable", nil}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte("ok\n"))
	return nil
}

// publish tells the event hub, if any, that a job changed.
func (s *Server) publish(job int64) {
	if s.cfg.Events != nil {
		s.cfg.Events.Publish(job)
	}
}

// publishNodes tells every server's event hub (SignalNodes), or this
// one's, that nodes changed: an agent waiting on one then looks for its
// certificate or its runs.
func (s *Server) publishNodes(ctx context.Context, names ...string) {
	if len(names) == 0 {
		return
	}
	if s.cfg.SignalNodes != nil {
		if err := s.cfg.SignalNodes(ctx, names...); err == nil {
			return
		} else {
			s.log.Warn("signalling nodes through the database; only this server's agents hear it", "err", err)
		}
	}
	if s.cfg.Events != nil {
		s.cfg.Events.PublishNode(names...)
	}
}
