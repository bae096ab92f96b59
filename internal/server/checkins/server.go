// Package checkins is the server's agent listener: the HTTPS endpoint,
// mutual TLS only (but for enrollment), where `muster agent`s enroll,
// check in and report (the protocol is internal/checkin). It asks the
// pull scheduler (internal/pull) whether a node runs now, and puts every
// pull run on the same queue as push work: a pull run is a node-run of a
// job of kind pull, claimed by the node's own agent, so the one running
// run per node, priorities, cancel, audit and the metrics cover it, and a
// push job and a pull run never overlap on a node.
//
// The node's identity is the certname of its verified client certificate;
// no payload names a node. A revoked certificate is refused at its next
// handshake: the TLS layer asks the Store on every connection.
//
// An idle check-in writes nothing: the time a node was last seen is kept
// in memory (Seen), and the Store is written when a run starts or ends.
package checkins

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/checkin"
	"github.com/muster-run/muster/internal/events"
	"github.com/muster-run/muster/internal/pki"
	"github.com/muster-run/muster/internal/pull"
)

// Store is what the listener needs of the Store.
type Store interface {
	muster.Nodes
	muster.Jobs
	muster.WorkQueue
}

// Config configures a Server. Store, CA and Scheduler are required.
type Config struct {
	Store     Store
	CA        *pki.CA
	Scheduler *pull.Scheduler
	// Groups returns the node's inventory groups (for the pull
	// configuration's group matches); nil means none.
	Groups func(certname string) []string
	// Events, when set, wakes a held check-in when its node is asked to
	// run (muster node run), and is told of pull runs' changes.
	Events *events.Hub
	// CertLifetime is an agent certificate's lifetime (default 90 days).
	CertLifetime time.Duration
	// MaxWait bounds how long a check-in may be held open (default 5m).
	MaxWait time.Duration
	// LeaseSlack is added to a pull run's timeout for its lease (the agent
	// reports within it, or the run is taken back); default 5m, and runs
	// without a timeout get an hour plus the slack.
	LeaseSlack time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Server serves the agent listener. It is an http.Handler.
type Server struct {
	cfg Config
	log *slog.Logger
	now func() time.Time
	mux *http.ServeMux

	mu   sync.Mutex
	seen map[string]time.Time // certname -> last check-in, in memory
	next map[string]time.Time // certname -> next check-in told
	out  map[int64]handedOut  // run id -> what its agent was told
}

// New builds the listener's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.Scheduler == nil {
		return nil, errors.New("checkins: Config.Store, CA and Scheduler are required")
	}
	if cfg.CertLifetime <= 0 {
		cfg.CertLifetime = 90 * 24 * time.Hour
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = 5 * time.Minute
	}
	if cfg.LeaseSlack <= 0 {
		cfg.LeaseSlack = 5 * time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, now: cfg.Now, mux: http.NewServeMux(),
		seen: map[string]time.Time{}, next: map[string]time.Time{}}
	s.mux.HandleFunc("POST "+checkin.PathEnroll, s.wrap(false, s.handleEnroll))
	s.mux.HandleFunc("POST "+checkin.PathCert, s.wrap(false, s.handleCert))
	s.mux.HandleFunc("POST "+checkin.PathCheckIn, s.wrap(true, s.handleCheckIn))
	s.mux.HandleFunc("POST "+checkin.PathReport, s.wrap(true, s.handleReport))
	s.mux.HandleFunc("POST "+checkin.PathRenew, s.wrap(true, s.handleRenew))
	s.mux.HandleFunc("POST "+checkin.PathFacts, s.wrap(true, s.handleFacts))
	s.mux.HandleFunc("GET "+checkin.PathOpenAPI, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(checkin.OpenAPI)
	})
	return s, nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// TLSConfig is the listener's TLS configuration: a server certificate for
// hosts from the CA (renewed when two-thirds of its life has passed), TLS
// 1.3, client certificates verified against the CA and checked against the
// Store's revocations on every handshake. A client certificate is optional
// only so that a new node can enroll; every other endpoint refuses a
// connection without one.
func (s *Server) TLSConfig(hosts []string) (*tls.Config, error) {
	cert, err := s.cfg.CA.ServerCert(hosts, pki.DefaultServerLifetime, s.now())
	if err != nil {
		return nil, err
	}
	revoked := func(serial *big.Int) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := s.cfg.Store.SerialRevoked(ctx, pki.FormatSerial(serial))
		if err != nil {
			s.log.Warn("revocation check failed; refusing the connection", "err", err)
			return true
		}
		return r
	}
	cfg := s.cfg.CA.EnrollServerTLSConfig(cert, revoked)
	var mu sync.Mutex
	cfg.Certificates = nil
	cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		mu.Lock()
		defer mu.Unlock()
		if pki.NeedsRenewal(cert.Leaf, s.now()) {
			fresh, err := s.cfg.CA.ServerCert(hosts, pki.DefaultServerLifetime, s.now())
			if err != nil {
				return nil, err
			}
			cert = fresh
		}
		return &cert, nil
	}
	return cfg, nil
}

// httpError is an error answer.
type httpError struct {
	status int
	code   string
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, code, format string, args ...any) error {
	return &httpError{status, code, fmt.Sprintf(format, args...)}
}

// wrap runs h, with the caller's certname when mtls (refusing a
// connection without a verified certificate), and writes its error as the
// protocol's ErrorResponse.
func (s *Server) wrap(mtls bool, h func(w http.ResponseWriter, r *http.Request, certname string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, checkin.MaxBody)
		certname := ""
		if mtls {
			var err error
			if r.TLS == nil {
				err = errors.New("not a TLS connection")
			} else {
				certname, err = pki.PeerCertname(*r.TLS)
			}
			if err != nil {
				writeJSON(w, http.StatusUnauthorized, checkin.ErrorResponse{Version: checkin.Version, Code: "unauthorized",
					Message: "this endpoint needs the node's client certificate: " + err.Error()})
				return
			}
		}
		if err := h(w, r, certname); err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				s.log.Error("agent request failed", "path", r.URL.Path, "certname", certname, "err", err)
				he = &httpError{http.StatusInternalServerError, "internal", "internal error: the server logged it"}
			}
			writeJSON(w, he.status, checkin.ErrorResponse{Version: checkin.Version, Code: he.code, Message: he.msg})
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads a request body into v, answering 400 for a bad one.
func decode(r *http.Request, v any) error {
	if err := checkin.Decode(r.Body, v); err != nil {
		return errorf(http.StatusBadRequest, "invalid", "%v", err)
	}
	return nil
}

// Seen returns when a node last checked in with this server, and the
// next check-in it was told, for `muster node list`.
func (s *Server) Seen(certname string) (last, next time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok = s.seen[certname]
	return last, s.next[certname], ok
}

func (s *Server) noteSeen(certname string, now, next time.Time) {
	s.mu.Lock()
	s.seen[certname] = now
	if !next.IsZero() {
		s.next[certname] = next
	}
	s.mu.Unlock()
}

// SyncLoad sets the scheduler's runs in flight per backend from the
// store's count over every server (Nodes.BackendLoad), now and every
// `every` until ctx ends: a server choosing a backend sees the runs the
// others started. (The store enforces the limits at each claim; this keeps
// the choice of backend and the interval controller true.) It reads the
// database only.
func (s *Server) SyncLoad(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		load, err := s.cfg.Store.BackendLoad(ctx)
		if err == nil {
			s.cfg.Scheduler.SetLoads(s.now(), load)
		} else if ctx.Err() == nil {
			s.log.Warn("reading the backends' load", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
