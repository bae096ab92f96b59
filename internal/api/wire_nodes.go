package api

// wire_nodes.go: the wire types of pull mode's part of the API: enrollment
// tokens, nodes, their facts, run-now requests and the CA.

import (
	"time"

	"github.com/muster-run/muster"
)

// EnrollTokenRequest is the body of POST /api/v1/enroll-tokens.
type EnrollTokenRequest struct {
	Name string `json:"name"`
	// Uses is how many enrollments the token allows (default 1).
	Uses int `json:"uses,omitzero"`
	// Expires is how long the token lives (default 24h, at most a year).
	Expires Duration `json:"expires,omitzero"`
	// Certnames is the autosign policy: comma-separated globs of the
	// certnames signed at once ("web*.example.com, db1.example.com"). A
	// request outside them, or every request when it is empty, waits for
	// POST /api/v1/nodes/{certname}/sign.
	Certnames string `json:"certnames,omitempty"`
}

// The states of an enrollment token, in EnrollTokenView.State.
const (
	EnrollTokenLive    = "live"
	EnrollTokenExpired = "expired"
	EnrollTokenUsedUp  = "used_up"
	EnrollTokenRevoked = "revoked"
)

// EnrollTokenView is an enrollment token's record, without its secret or
// hash.
type EnrollTokenView struct {
	ID        int64     `json:"id"`
	Name      string    `json:"name"`
	Uses      int       `json:"uses"`
	Used      int       `json:"used"`
	Expires   time.Time `json:"expires,omitzero"`
	Certnames string    `json:"certnames"`
	// State is live, expired, used_up or revoked, as of the answer.
	State     string    `json:"state"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// CreatedEnrollToken answers an enrollment token's creation: what `muster
// agent --enroll-token SECRET --ca-fingerprint CA_FINGERPRINT` needs.
// Secret is shown this once.
type CreatedEnrollToken struct {
	Token  EnrollTokenView `json:"token"`
	Secret string          `json:"secret"`
	// CAFingerprint is the fingerprint of the server's CA ("sha256:" and
	// 64 hex digits), which the agent checks on its first contact.
	CAFingerprint string `json:"ca_fingerprint"`
}

// EnrollTokenList holds every enrollment token, live and not, by id.
type EnrollTokenList struct {
	Tokens []EnrollTokenView `json:"tokens"`
}

// NodeLive is what a server knows of a pull-mode node beyond the store,
// from its agent listener's memory (Config.NodeInfo). Each field is zero
// when unknown.
type NodeLive struct {
	// LastCheckIn is the node's latest check-in at this server, idle ones
	// included (the store records only check-ins that changed something).
	LastCheckIn time.Time `json:"last_checkin,omitzero"`
	// NextCheckIn is when the server told the node to check in next.
	NextCheckIn time.Time `json:"next_checkin,omitzero"`
	// NextSlot is when the node is next due to run by the pull schedule.
	NextSlot time.Time `json:"next_slot,omitzero"`
	// Backend serves the node's run in flight, or served its latest.
	Backend string `json:"backend,omitempty"`
}

// NodeView is a pull-mode node as the API shows it.
type NodeView struct {
	Certname string           `json:"certname"`
	State    muster.NodeState `json:"state"`
	// Serial (hex), Fingerprint and CertExpires describe the certificate
	// in force (or, for a revoked node, the last one).
	Serial      string    `json:"serial,omitempty"`
	Fingerprint string    `json:"fingerprint,omitempty"`
	CertExpires time.Time `json:"cert_expires,omitzero"`
	// RequestFingerprint is the SHA-256 of a pending node's certificate
	// request (DER), to compare with the agent's before signing.
	RequestFingerprint string    `json:"request_fingerprint,omitempty"`
	EnrolledAt         time.Time `json:"enrolled_at,omitzero"`
	SignedAt           time.Time `json:"signed_at,omitzero"`
	// EnrolledWith names the enrollment token of the node's request.
	EnrolledWith string `json:"enrolled_with,omitempty"`
	// LastCheckIn is the latest check-in known: the store's or, when
	// later, this server's (Live.LastCheckIn).
	LastCheckIn time.Time `json:"last_checkin,omitzero"`
	LastRunID   int64     `json:"last_run_id,omitzero"`
	LastRunAt   time.Time `json:"last_run_at,omitzero"`
	// FactsAt is when the node's agent last uploaded its facts (GET
	// /api/v1/nodes/{certname}/facts returns them).
	FactsAt time.Time `json:"facts_at,omitzero"`
	// Live is set when this server knows more of the node than the store.
	Live *NodeLive `json:"live,omitempty"`
	// Certificate is the certificate (PEM); only GET of one node shows it.
	Certificate string `json:"certificate,omitempty"`
}

// NodeFacts is GET /api/v1/nodes/{certname}/facts: the facts the node's
// agent last uploaded ({} before any) and when.
type NodeFacts struct {
	Certname string         `json:"certname"`
	FactsAt  time.Time      `json:"facts_at,omitzero"`
	Facts    map[string]any `json:"facts"`
}

// NodeList is a page of nodes, by certname. NextAfter, when set, is the
// "after" value of the next page.
type NodeList struct {
	Nodes     []NodeView `json:"nodes"`
	NextAfter string     `json:"next_after,omitempty"`
}

// PullRunRequest is the body of POST /api/v1/pull-runs: the signed nodes
// to run now. Each comma-separated entry of the spec (or each list item)
// is a certname or a certname glob ("web*.example.com"; see the autosign
// globs) matched against the signed nodes or, when it matches none, a
// target spec (an inventory group) resolved by the server, of which the
// signed nodes are kept.
type PullRunRequest struct {
	Targets Targets `json:"targets"`
}

// CAView is the server's CA certificate.
type CAView struct {
	// Certificate is the CA certificate (PEM).
	Certificate string `json:"certificate"`
	// Fingerprint is "sha256:" and the 64 hex digits of its DER's SHA-256,
	// what `muster agent --ca-fingerprint` takes.
	Fingerprint string    `json:"fingerprint"`
	Subject     string    `json:"subject"`
	NotBefore   time.Time `json:"not_before"`
	NotAfter    time.Time `json:"not_after"`
}
