// Package checkin is the pull-mode protocol between `muster agent` and the
// server: versioned JSON over HTTPS with mutual TLS on the server's agent
// listener (--agent-listen). The agent's identity is its certificate's
// certname; no payload names the node, so no payload can speak for
// another one. Nothing the server sends is evaluated by the agent: a run
// is a command line, a success-code list and an environment.
//
// The endpoints (all POST, JSON in and out, under /agent/v1/):
//
//	enroll   no client certificate: an enrollment token and a CSR; answers
//	         the signed certificate, or "pending" until an operator signs
//	cert     no client certificate: the CSR's public key proves who asks;
//	         answers the certificate once signed
//	checkin  mTLS: "should I run now?"; may be held open (long poll) up to
//	         Wait, so "run now" reaches an idle agent at once
//	report   mTLS: a run's end, by its run id and attempt (its lease);
//	         idempotent
//	renew    mTLS: a new CSR for the same certname, at two-thirds of the
//	         certificate's lifetime
//	facts    mTLS: the node's facts, when a check-in's answer asks
//
// openapi.json in this package documents them (TestOpenAPIMatchesProtocol
// keeps it true to the types here).
//
// Every request and answer carries Version; a server refuses a version it
// does not speak with 400 and says which it speaks.
package checkin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Version is the protocol version this package speaks.
const Version = 1

// MaxBody bounds every request body the server reads, and MaxOutput the
// run output a report carries (per stream; the agent keeps the tail).
const (
	MaxBody   = 2 << 20
	MaxOutput = 512 << 10
)

// Paths of the endpoints.
const (
	PathEnroll  = "/agent/v1/enroll"
	PathCert    = "/agent/v1/cert"
	PathCheckIn = "/agent/v1/checkin"
	PathReport  = "/agent/v1/report"
	PathRenew   = "/agent/v1/renew"
	PathFacts   = "/agent/v1/facts"
)

// EnrollRequest asks for a certificate with an enrollment token.
type EnrollRequest struct {
	Version int    `json:"version"`
	Token   string `json:"token"`
	CSR     []byte `json:"csr"` // DER; the certname is the CSR's subject
}

// CertRequest asks for the certificate of a pending request.
type CertRequest struct {
	Version int    `json:"version"`
	CSR     []byte `json:"csr"` // the same request again: its key proves who asks
}

// CertResponse answers enroll, cert and renew.
type CertResponse struct {
	Version int `json:"version"`
	// State is "signed" (Cert is set) or "pending" (ask again after
	// RetryAfter).
	State      string        `json:"state"`
	Cert       []byte        `json:"cert,omitempty"` // DER
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	Message    string        `json:"message,omitempty"`
}

// CheckInRequest is an agent's "should I run now?".
type CheckInRequest struct {
	Version int `json:"version"`
	// Wait is how long the server may hold the request open before it
	// answers "not now" (long poll); 0 answers at once.
	Wait time.Duration `json:"wait,omitempty"`
	// Changed lists watched files that changed since the last check-in:
	// the agent asks for a forced run.
	Changed []string `json:"changed,omitempty"`
	// LastRun is when the agent last finished a run (zero: never).
	LastRun time.Time `json:"last_run,omitempty"`
	// Offline is set when the agent ran on its own slot while the server
	// was unreachable (--offline-run-after); its reports follow.
	Offline bool `json:"offline,omitempty"`
}

// Run is what the agent runs: the server's configured command for the
// node's group, never anything the agent evaluates.
type Run struct {
	RunID   int64 `json:"run_id"`
	Attempt int   `json:"attempt"`
	// Command is run with /bin/sh -c on the node; or Task, a muster task
	// from the agent's own module path (--modulepath, and the built-in
	// modules), with Params. Exactly one is set.
	Command      string            `json:"command,omitempty"`
	Task         string            `json:"task,omitempty"`
	Params       map[string]any    `json:"params,omitempty"`
	SuccessCodes []int             `json:"success_codes"`
	Env          map[string]string `json:"env,omitempty"`
	Timeout      time.Duration     `json:"timeout,omitempty"`
	// Backend names the backend chosen for this run (also in Env as
	// MUSTER_BACKEND).
	Backend string `json:"backend,omitempty"`
	// LeaseExpires is when the server takes the run back unless the agent
	// reports (the agent reports well before, or the run is retried).
	LeaseExpires time.Time `json:"lease_expires"`
}

// CheckInResponse is the server's decision.
type CheckInResponse struct {
	Version int `json:"version"`
	// Run is set when the agent must run now.
	Run *Run `json:"run,omitempty"`
	// Next is when to check in again (the server spreads these; an agent
	// adds no splay of its own).
	Next time.Time `json:"next"`
	// Watch lists the files whose change forces a run.
	Watch []string `json:"watch,omitempty"`
	// UploadFacts asks for the node's facts with the next report.
	UploadFacts bool `json:"upload_facts,omitempty"`
	// CertRenewAt is when the agent should renew its certificate.
	CertRenewAt time.Time `json:"cert_renew_at,omitempty"`
}

// Report is a run's end. A second report of the same run and attempt is
// accepted and changes nothing.
type Report struct {
	Version  int           `json:"version"`
	RunID    int64         `json:"run_id"`
	Attempt  int           `json:"attempt"`
	ExitCode int           `json:"exit_code"`
	Stdout   string        `json:"stdout"`
	Stderr   string        `json:"stderr"`
	Duration time.Duration `json:"duration"`
	Started  time.Time     `json:"started"`
	// Changed lists the watched files that changed during the run.
	Changed []string `json:"changed,omitempty"`
	// Error says why the run could not run at all (the command could not
	// start); ExitCode is then -1.
	Error string `json:"error,omitempty"`
}

// FactsUpload carries a node's facts, sent when a check-in's answer asks
// for them (UploadFacts). The node is the client certificate's certname;
// the facts are a JSON object in Facter's layout (os.family,
// networking.fqdn, ...), at most MaxFacts bytes encoded.
type FactsUpload struct {
	Version int            `json:"version"`
	Facts   map[string]any `json:"facts"`
}

// MaxFacts bounds a node's encoded facts.
const MaxFacts = 512 << 10

// Validate checks a facts upload's values.
func (f *FactsUpload) Validate() error {
	if f.Facts == nil {
		return fmt.Errorf("facts: a JSON object is required")
	}
	b, err := json.Marshal(f.Facts)
	if err != nil {
		return fmt.Errorf("facts: %w", err)
	}
	if len(b) > MaxFacts {
		return fmt.Errorf("facts are %d bytes encoded; at most %d", len(b), MaxFacts)
	}
	for k := range f.Facts {
		if k == "" || len(k) > 256 {
			return fmt.Errorf("facts: a top-level name must be 1 to 256 bytes")
		}
	}
	return nil
}

// FactsResponse acknowledges a facts upload.
type FactsResponse struct {
	Version  int       `json:"version"`
	StoredAt time.Time `json:"stored_at"`
}

// ReportResponse acknowledges a report.
type ReportResponse struct {
	Version int `json:"version"`
	// State is the run's state after the report ("succeeded", "failed",
	// ...), or "stale" when the run was taken back (its lease expired and
	// another attempt owns it): the agent drops the report.
	State string `json:"state"`
}

// ErrorResponse is every error answer's body.
type ErrorResponse struct {
	Version int    `json:"version"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Decode reads one JSON value of at most MaxBody bytes into v, strictly
// (unknown fields are errors, and so is trailing data), and checks its
// version.
func Decode(r io.Reader, v any) error {
	b, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return fmt.Errorf("reading the body: %w", err)
	}
	if len(b) > MaxBody {
		return fmt.Errorf("body larger than %d bytes", MaxBody)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return fmt.Errorf("invalid JSON: data after the value")
	}
	if got := versionOf(v); got != Version {
		return fmt.Errorf("protocol version %d: this side speaks version %d", got, Version)
	}
	return nil
}

func versionOf(v any) int {
	switch x := v.(type) {
	case *EnrollRequest:
		return x.Version
	case *CertRequest:
		return x.Version
	case *CertResponse:
		return x.Version
	case *CheckInRequest:
		return x.Version
	case *CheckInResponse:
		return x.Version
	case *Report:
		return x.Version
	case *ReportResponse:
		return x.Version
	case *FactsUpload:
		return x.Version
	case *FactsResponse:
		return x.Version
	case *ErrorResponse:
		return x.Version
	}
	return Version
}

// Validate checks a check-in request's values.
func (r *CheckInRequest) Validate() error {
	switch {
	case r.Wait < 0 || r.Wait > 10*time.Minute:
		return fmt.Errorf("wait %s: use 0 to 10m", r.Wait)
	case len(r.Changed) > 1000:
		return fmt.Errorf("changed lists %d files; at most 1000", len(r.Changed))
	}
	for _, f := range r.Changed {
		if f == "" || len(f) > 4096 {
			return fmt.Errorf("changed: a file name must be 1 to 4096 bytes")
		}
	}
	return nil
}

// Validate checks a report's values.
func (r *Report) Validate() error {
	switch {
	case r.RunID <= 0 || r.Attempt <= 0:
		return fmt.Errorf("report needs run_id and attempt (got %d and %d)", r.RunID, r.Attempt)
	case len(r.Stdout) > MaxOutput || len(r.Stderr) > MaxOutput:
		return fmt.Errorf("output longer than %d bytes per stream: send its tail", MaxOutput)
	case r.Duration < 0:
		return fmt.Errorf("duration %s is negative", r.Duration)
	case r.ExitCode < -1 || r.ExitCode > 255:
		return fmt.Errorf("exit_code %d is out of range -1..255", r.ExitCode)
	case len(r.Changed) > 1000:
		return fmt.Errorf("changed lists %d files; at most 1000", len(r.Changed))
	}
	return nil
}
