package muster

import (
	"context"
	"errors"
	"time"
)

// This file is pull mode's vocabulary: the nodes that run `muster agent`,
// their certificates, and the enrollment tokens that let a new node ask
// for one. The server keeps them in the Store (the Nodes part); the
// certname in a node's certificate is its identity everywhere.

// NodeState is where a node stands with the server's CA.
type NodeState string

// The node states.
const (
	// NodePending: the node sent a certificate request that no
	// enrollment token's autosign policy covered; it waits for an
	// operator's `muster cert sign`.
	NodePending NodeState = "pending"
	// NodeSigned: the node holds a valid certificate.
	NodeSigned NodeState = "signed"
	// NodeRevoked: the node's certificate was revoked; its handshakes are
	// refused until it enrolls again with a new token.
	NodeRevoked NodeState = "revoked"
)

// Node is a pull-mode node as the server records it.
type Node struct {
	Certname string
	State    NodeState
	// CSR is the pending certificate request (DER), kept until signed.
	CSR []byte
	// Serial (hex) and CertExpires describe the certificate in force;
	// Cert is its DER, kept so a node whose request waited for approval
	// can fetch it.
	Serial      string
	Cert        []byte
	CertExpires time.Time
	EnrolledAt  time.Time // when its first request arrived
	SignedAt    time.Time
	// EnrolledWith names the enrollment token its request came with.
	EnrolledWith string
	// LastRunID and LastRunAt are the node's latest pull run; they are
	// written when a run starts and ends, never by an idle check-in.
	LastRunID int64
	LastRunAt time.Time
	// LastCheckIn is written at most when a check-in changes something
	// (a run starts or ends, a certificate renews): the server keeps the
	// exact time of idle check-ins in memory.
	LastCheckIn time.Time
	// FactsAt is when the node's agent last uploaded its facts (zero:
	// never); the facts themselves are read with Nodes.NodeFacts.
	FactsAt time.Time
}

// EnrollToken is an enrollment token's record. As with API tokens, only
// the secret's SHA-256 hash is stored.
type EnrollToken struct {
	ID   int64
	Name string // unique among live tokens
	// Uses is how many enrollments it allows (0: no limit); Used counts
	// them.
	Uses, Used int
	Expires    time.Time // zero: never
	// Certnames is the autosign policy: comma-separated globs of the
	// certnames whose requests are signed at once. A request outside it
	// waits for `muster cert sign`. Empty means none are autosigned.
	Certnames string
	CreatedBy string
	CreatedAt time.Time
	RevokedAt time.Time
}

// Nodes is the Store part that keeps pull-mode nodes and enrollment
// tokens. Every state change is one transaction.
type Nodes interface {
	// CreateEnrollToken stores a new token's hash. A live token with the
	// same name is an ErrInvalid error.
	CreateEnrollToken(ctx context.Context, t EnrollToken, hash []byte) (EnrollToken, error)
	// ListEnrollTokens returns every enrollment token, by id.
	ListEnrollTokens(ctx context.Context) ([]EnrollToken, error)
	// RevokeEnrollToken revokes a live token by name; ErrNotFound if none.
	RevokeEnrollToken(ctx context.Context, name string) (EnrollToken, error)
	// Enroll records a certificate request from certname made with the
	// token whose hash is given, in one transaction: the token must be
	// live, unexpired at now and not used up (else ErrInvalid, with the
	// reason), and its use is counted. The node becomes pending with csr;
	// a signed node is refused (ErrInvalid: it must be revoked first)
	// unless its certificate has expired at now, and a pending or revoked
	// one is replaced (a pending one keeps its EnrolledAt). It returns the
	// token, whose Certnames the caller checks for autosigning. Of
	// concurrent enrollments that would use a token's last use, exactly
	// one succeeds.
	Enroll(ctx context.Context, tokenHash []byte, certname string, csr []byte, now time.Time) (EnrollToken, Node, error)
	// SignNode stores the certificate issued to a pending node (or the
	// renewal of a signed one) and makes it signed: serial becomes the one
	// in force, so the node's previous certificate no longer passes
	// SerialRevoked. A revoked node is refused (ErrInvalid: it enrolls
	// again), an unknown one is ErrNotFound. A renewal counts as a
	// check-in.
	SignNode(ctx context.Context, certname, serial string, cert []byte, expires, now time.Time) (Node, error)
	// RevokeNode revokes a node's certificate; ErrNotFound if unknown.
	RevokeNode(ctx context.Context, certname string) (Node, error)
	// SerialRevoked reports whether a certificate serial (hex) is not the
	// one in force for a signed node: revoked, replaced, or unknown. The
	// agent listener asks on every handshake.
	SerialRevoked(ctx context.Context, serial string) (bool, error)
	// GetNode returns one node; ErrNotFound if unknown.
	GetNode(ctx context.Context, certname string) (Node, error)
	// ListNodes returns every node by certname.
	ListNodes(ctx context.Context) ([]Node, error)
	// NoteNodeRun records a pull run of the node starting (or ending):
	// its id and time, and the check-in that carried it.
	NoteNodeRun(ctx context.Context, certname string, runID int64, at time.Time) error
	// ClaimNodeRun is an agent's claim: in one transaction it moves the
	// node's best ready pull run (pending, or scheduled or retrying with
	// RunAt passed; bumped, then priority, then oldest RunAt, as ClaimRuns
	// orders) to running under a lease of c.LeaseTTL held by c.Owner (the
	// server passes "agent:<certname>"), and notes it as the node's last
	// run (NoteNodeRun) at c.Now. It returns false, and changes nothing,
	// when the node has no ready pull run or already has a running run of
	// any kind: a node runs one run at a time. The node must be signed
	// (else ErrNotFound for an unknown one, ErrInvalid for another state).
	//
	// With c.Backend set, the run is recorded as running on that backend,
	// and the claim is refused with ErrBackendFull, changing nothing, when
	// the backend's limits (c.Limit) are reached counting every server on
	// the database: the limits hold across servers.
	//
	// The run is then held like any claimed run: the agent's report ends
	// it with WorkQueue.CompleteRuns (Server: owner, its Attempt),
	// WorkQueue.Heartbeat(owner) extends the lease, and
	// Rescuer.RescueExpired takes it back if the lease expires.
	ClaimNodeRun(ctx context.Context, c NodeClaim) (Run, bool, error)
	// SetNodeFacts replaces a signed node's facts (a JSON object) as of
	// at; ErrNotFound unless the node is signed, ErrInvalid unless facts
	// is an object.
	SetNodeFacts(ctx context.Context, certname string, facts []byte, at time.Time) error
	// NodeFacts returns a node's facts ("{}" before any upload) and when
	// they were uploaded; ErrNotFound if unknown.
	NodeFacts(ctx context.Context, certname string) ([]byte, time.Time, error)
	// BackendLoad returns the number of running pull runs on each backend,
	// over every server on the database (backends with none are absent).
	BackendLoad(ctx context.Context) (map[string]int, error)
}

// NodeClaim is an agent's claim of its node's next pull run.
type NodeClaim struct {
	Certname string
	Owner    string
	LeaseTTL time.Duration
	// Now is the claim's time; zero means the store's clock.
	Now time.Time
	// Backend, when set, is the backend the run will use: recorded on the
	// run, and admitted only within Limit.
	Backend string
	Limit   BackendLimit
}

// BackendLimit is a backend's capacity, shared by every server on the
// database.
type BackendLimit struct {
	// MaxRunning is the most runs running on the backend at once; 0 means
	// no limit.
	MaxRunning int
	// Rate is the most run starts per second (a token bucket of Burst
	// tokens); 0 means no limit.
	Rate  float64
	Burst float64
}

// ErrBackendFull is ClaimNodeRun's refusal when the run's backend has no
// room: its running runs or its start rate reached their limit.
var ErrBackendFull = errors.New("backend full")

// NodeSignals is implemented by a Store that several servers share
// (PostgreSQL): a node asked to act (muster node run, a pull job) may hold
// its check-in open on another server, which hears of it through the
// database.
type NodeSignals interface {
	// SignalNodes tells every server on the database, this one included,
	// that these nodes have something to look at.
	SignalNodes(ctx context.Context, certnames ...string) error
	// OnNodeSignal sets the function that receives the signalled
	// certnames (from any server). Set it once, before signals matter.
	OnNodeSignal(func(certnames []string))
}
