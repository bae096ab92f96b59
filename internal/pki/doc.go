// Package pki is muster's certificate authority and the identity of its
// agents: the pieces that `muster server`, `muster agent` and the `muster
// cert` and `muster enroll-token` commands wire together. It is a pure
// library over the standard library's crypto/x509, crypto/tls and
// crypto/ed25519: no database, no HTTP server, no flags. The only I/O it
// does is reading and writing key and certificate files.
//
// # The identity model
//
// A node's identity is its certname: a lowercase, DNS-like name (by default
// the agent's FQDN) checked by [ValidCertname]. The server's CA puts it in
// the agent's client certificate twice, as the subject's common name and as
// the one DNS subject alternative name. The DNS SAN is authoritative:
// [PeerCertname] reads it, and refuses a certificate whose common name
// differs or that carries any other name. The common name is there for
// humans and for tools (openssl, NATS's verify_and_map) that show or map
// the subject.
//
// Every certificate the CA issues says what it is for: agent certificates
// carry only the client-auth extended key usage, server certificates only
// server-auth. So an agent's certificate cannot pose as the server, even
// when its certname equals the server's host name, and the server's
// certificate cannot check in as a node.
//
// Nothing the server accepts from a node is trusted for another node: the
// server calls [PeerCertname] on the verified connection and refuses a
// report, fact upload or check-in whose node is not that name.
//
// # The CA
//
// [LoadOrCreateCA] makes an ed25519 root (valid 10 years) on the server's
// first start: ca.crt (mode 0644) and ca.key (mode 0600) in the server's
// data directory. The key never leaves that directory, and a key file that
// group or others can read is refused, the way ssh refuses a loose private
// key. The CA signs agent certificates ([CA.Sign]) and the server's own
// certificates for its agent listener ([CA.ServerCert]); the same CA will
// later sign the certificates agents use on NATS for agent RPC.
//
// Agents send ed25519 or ECDSA P-256 keys; RSA keys are refused at every
// size (they add nothing the other two lack, and cost more to verify).
//
// # Trust on first contact
//
// An agent learns the CA on its first connection. The server sends the CA
// certificate after its own in the TLS chain, and the agent compares its
// SHA-256 fingerprint ([CA.Fingerprint], printed as "sha256:" and 64 hex
// digits) with the one its operator gave (--ca-fingerprint), in constant
// time ([VerifyFingerprint], [FirstContactTLSConfig]). Only an explicit
// --insecure-first-contact skips that comparison. From then on the agent
// trusts that CA alone ([ClientTLSConfig]).
//
// # Enrollment
//
// An enrollment token ([NewEnrollToken]: "mse_" and 32 random bytes; the
// store keeps only its SHA-256) lets an agent send a certificate signing
// request. Its [EnrollPolicy] says how often it may be used, until when,
// and which certnames it signs without a human: a CSR for a certname
// outside those globs ([MatchGlob]) waits for `muster cert sign`
// ([ErrNeedsApproval]), while an expired or used-up token refuses the CSR
// outright ([ErrTokenExpired], [ErrTokenUsedUp]).
//
// # Revocation and renewal
//
// There is no CRL. The server's TLS configuration ([CA.ServerTLSConfig])
// asks the server's store, through a callback, whether the peer's serial is
// revoked on every connection, and disables TLS session tickets so that no
// connection skips the full check (certificate chain, validity dates and
// revocation). Agents renew their certificates at two-thirds of their
// lifetime ([NeedsRenewal]); a renewal is a new CSR for the same certname,
// sent over a connection authenticated by the current certificate.
package pki
