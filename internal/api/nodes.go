package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/pki"
)

// This file serves pull mode's nodes and their certificates: listing them,
// signing and revoking, "run now", and the CA certificate.

// RunNowPriority is the priority of the pull runs that "run now" queues
// (POST /api/v1/nodes/{certname}/run and POST /api/v1/pull-runs). They are
// also bumped to the front of the queue, so the node's agent claims them
// at its next check-in.
const RunNowPriority = 1000

// Paging of GET /api/v1/nodes.
const (
	defaultNodesPage = 1000
	maxNodesPage     = 10000
)

// certnameParam reads and checks the {certname} path value.
func certnameParam(r *http.Request) (string, error) {
	name := r.PathValue("certname")
	if err := pki.ValidCertname(name); err != nil {
		return "", fieldErr("certname", "%v", err)
	}
	return name, nil
}

// pathNode loads the node the request's path names: 400 for an invalid
// certname, 404 naming it when there is no such node.
func (s *Server) pathNode(r *http.Request) (muster.Node, error) {
	name, err := certnameParam(r)
	if err != nil {
		return muster.Node{}, err
	}
	n, err := s.store.GetNode(r.Context(), name)
	if errors.Is(err, muster.ErrNotFound) {
		return n, notFound("no node %q", name)
	}
	return n, err
}

// nodeView converts a stored node and adds what Config.NodeInfo knows.
// withCert includes the certificate's PEM.
func (s *Server) nodeView(n muster.Node, withCert bool) NodeView {
	v := NodeView{Certname: n.Certname, State: n.State, Serial: n.Serial, CertExpires: n.CertExpires,
		EnrolledAt: n.EnrolledAt, SignedAt: n.SignedAt, EnrolledWith: n.EnrolledWith, LastCheckIn: n.LastCheckIn,
		LastRunID: n.LastRunID, LastRunAt: n.LastRunAt, FactsAt: n.FactsAt}
	if len(n.Cert) > 0 {
		v.Fingerprint = pki.FingerprintOf(n.Cert)
		if withCert {
			v.Certificate = string(pki.EncodeCertPEM(n.Cert))
		}
	}
	if n.State == muster.NodePending && len(n.CSR) > 0 {
		v.RequestFingerprint = pki.FingerprintOf(n.CSR)
	}
	if s.cfg.NodeInfo != nil {
		if live, ok := s.cfg.NodeInfo(n.Certname); ok {
			v.Live = &live
			if live.LastCheckIn.After(v.LastCheckIn) {
				v.LastCheckIn = live.LastCheckIn
			}
		}
	}
	return v
}

func (s *Server) handleListNodes(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	q := r.URL.Query()
	state := muster.NodeState(q.Get("state"))
	switch state {
	case "", muster.NodePending, muster.NodeSigned, muster.NodeRevoked:
	default:
		return badRequest("state: unknown node state %q (want pending, signed or revoked)", state)
	}
	limit, err := queryInt(q.Get("limit"), "limit", 1, maxNodesPage)
	if err != nil {
		return err
	}
	if limit == 0 {
		limit = defaultNodesPage
	}
	after := q.Get("after")
	nodes, err := s.store.ListNodes(r.Context())
	if err != nil {
		return err
	}
	out := NodeList{Nodes: []NodeView{}}
	for _, n := range nodes {
		if n.Certname <= after || state != "" && n.State != state {
			continue
		}
		if len(out.Nodes) == int(limit) {
			out.NextAfter = out.Nodes[len(out.Nodes)-1].Certname
			break
		}
		out.Nodes = append(out.Nodes, s.nodeView(n, false))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) handleGetNode(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	n, err := s.pathNode(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, s.nodeView(n, true))
	return nil
}

// handleNodeFacts returns the facts the node's agent last uploaded.
func (s *Server) handleNodeFacts(w http.ResponseWriter, r *http.Request, _ muster.Token) error {
	n, err := s.pathNode(r)
	if err != nil {
		return err
	}
	raw, at, err := s.store.NodeFacts(r.Context(), n.Certname)
	if errors.Is(err, muster.ErrNotFound) {
		return notFound("no node %q", n.Certname)
	} else if err != nil {
		return err
	}
	out := NodeFacts{Certname: n.Certname, FactsAt: at}
	if err := json.Unmarshal(raw, &out.Facts); err != nil {
		return fmt.Errorf("node %s: stored facts: %w", n.Certname, err)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// handleSignNode signs a pending node's stored certificate request with
// the server's CA.
func (s *Server) handleSignNode(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	if s.cfg.CA == nil {
		return errNoCA()
	}
	n, err := s.pathNode(r)
	if err != nil {
		return err
	}
	name := n.Certname
	switch n.State {
	case muster.NodePending:
	case muster.NodeRevoked:
		return conflict("node %s is revoked: it must enroll again with a new enrollment token", name)
	default:
		return conflict("node %s is %s already (serial %s); there is no request to sign", name, n.State, n.Serial)
	}
	csr, _, err := pki.ParseCSR(n.CSR)
	if err != nil {
		return conflict("node %s: its certificate request cannot be signed (%v); it must enroll again", name, err)
	}
	now := s.now()
	der, serial, err := s.cfg.CA.Sign(csr, name, s.cfg.CertLifetime, now)
	if err != nil {
		return conflict("node %s: %v", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("reading the certificate just signed for %s: %w", name, err)
	}
	signed, err := s.store.SignNode(r.Context(), name, pki.FormatSerial(serial), der, cert.NotAfter, now)
	switch {
	case errors.Is(err, muster.ErrNotFound):
		return notFound("no node %q", name)
	case errors.Is(err, muster.ErrInvalid):
		return conflict("%s", joinLines(err))
	case err != nil:
		return err
	}
	s.publishNodes(r.Context(), name)
	s.audit(r, who, "node.sign", "node/"+name, map[string]any{"certname": name, "serial": signed.Serial,
		"expires": signed.CertExpires, "request_fingerprint": pki.FingerprintOf(n.CSR)})
	writeJSON(w, http.StatusOK, s.nodeView(signed, true))
	return nil
}

// handleRevokeNode revokes a node's certificate, or refuses a pending
// node's request.
func (s *Server) handleRevokeNode(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	n, err := s.pathNode(r)
	if err != nil {
		return err
	}
	name := n.Certname
	if n.State == muster.NodeRevoked {
		return conflict("node %s is revoked already", name)
	}
	rev, err := s.store.RevokeNode(r.Context(), name)
	if errors.Is(err, muster.ErrNotFound) {
		return notFound("no node %q", name)
	} else if err != nil {
		return err
	}
	s.publishNodes(r.Context(), name)
	s.audit(r, who, "node.revoke", "node/"+name, map[string]any{"certname": name, "was": n.State, "serial": n.Serial})
	writeJSON(w, http.StatusOK, s.nodeView(rev, false))
	return nil
}

// handleRunNode queues a pull run of one signed node, at the front of the
// queue.
func (s *Server) handleRunNode(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	n, err := s.pathNode(r)
	if err != nil {
		return err
	}
	name := n.Certname
	switch n.State {
	case muster.NodeSigned:
	case muster.NodePending:
		return notFound("node %s is pending, not signed: it cannot run until its request is signed", name)
	default:
		return notFound("node %s is %s, not signed: it cannot run until it enrolls again", name, n.State)
	}
	out, err := s.runNow(r.Context(), who, []string{name})
	if err != nil {
		return err
	}
	s.audit(r, who, "node.run", "node/"+name, map[string]any{"certname": name, "job": out.Job.ID,
		"run": out.Runs[name], "coalesced": len(out.Coalesced) > 0})
	w.Header().Set("Location", fmt.Sprintf("/api/v1/jobs/%d", out.Job.ID))
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// handlePullRuns queues a pull run of each signed node its targets name,
// at the front of the queue.
func (s *Server) handlePullRuns(w http.ResponseWriter, r *http.Request, who muster.Token) error {
	req, err := decodePullRunRequest(r)
	if err != nil {
		return err
	}
	nodes, err := s.resolveSignedNodes(r.Context(), who, req.Targets)
	if err != nil {
		return err
	}
	out, err := s.runNow(r.Context(), who, nodes)
	if err != nil {
		return err
	}
	s.audit(r, who, "node.run", fmt.Sprintf("job/%d", out.Job.ID), map[string]any{"targets": req.Targets,
		"target_count": len(nodes), "coalesced": len(out.Coalesced)})
	w.Header().Set("Location", fmt.Sprintf("/api/v1/jobs/%d", out.Job.ID))
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// decodePullRunRequest reads a PullRunRequest strictly.
func decodePullRunRequest(r *http.Request) (PullRunRequest, error) {
	var req PullRunRequest
	fields, err := decodeObject(r.Body)
	if err != nil {
		return req, err
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if k != "targets" {
			return req, fieldErr(fieldName(k), "unknown field %q (want targets)", k)
		}
		if req.Targets, err = decodeTargets(fields[k]); err != nil {
			return req, err
		}
	}
	if len(targetEntries(req.Targets)) == 0 {
		return req, fieldErr("targets", "required: certnames, certname globs or groups, such as \"web*.example.com\"")
	}
	return req, nil
}

// targetEntries splits targets into their comma- or space-separated
// entries.
func targetEntries(t Targets) []string {
	specs := t.Nodes
	if specs == nil {
		specs = []string{t.Spec}
	}
	var out []string
	for _, spec := range specs {
		out = append(out, strings.FieldsFunc(spec, func(r rune) bool { return r == ',' || unicode.IsSpace(r) })...)
	}
	return out
}

// resolveSignedNodes turns targets into signed nodes' certnames, in order,
// without duplicates: each entry is matched as a certname glob against the
// signed nodes, or, when it matches none, resolved with Config.Resolve
// (an inventory group), keeping the signed nodes. An entry that names no
// signed node is a 400; the result is held to Config.MaxTargetsPerJob.
func (s *Server) resolveSignedNodes(ctx context.Context, who muster.Token, t Targets) ([]string, error) {
	entries := targetEntries(t)
	if err := refuseFileRefs(entries); err != nil {
		return nil, err
	}
	all, err := s.store.ListNodes(ctx)
	if err != nil {
		return nil, err
	}
	var signed []string
	isSigned := map[string]bool{}
	for _, n := range all {
		if n.State == muster.NodeSigned {
			signed = append(signed, n.Certname)
			isSigned[n.Certname] = true
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, entry := range entries {
		var got []string
		if pki.ValidGlobs(entry) == nil {
			for _, n := range signed {
				if pki.MatchGlob(entry, n) {
					got = append(got, n)
				}
			}
		}
		if len(got) == 0 && s.cfg.Resolve != nil {
			names, err := s.cfg.Resolve(ctx, who, entry)
			switch {
			case errors.Is(err, ErrForbidden):
				return nil, &apiError{http.StatusForbidden, CodeForbidden, "targets: " + err.Error(), nil}
			case err != nil && muster.KindOf(err) == muster.KindInternal:
				return nil, fmt.Errorf("resolving targets %q: %w", entry, err)
			}
			for _, n := range names {
				if isSigned[n] {
					got = append(got, n)
				}
			}
		}
		if len(got) == 0 {
			return nil, fieldErr("targets", "no signed node matches %q", entry)
		}
		for _, n := range got {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	if limit := s.cfg.MaxTargetsPerJob; limit > 0 && len(out) > limit {
		s.metrics.refuse(limitTargetsPerJob)
		return nil, fieldErr("targets", "the targets name %d nodes; this server allows at most %d per job "+
			"(--max-targets-per-job)", len(out), limit)
	}
	return out, nil
}

// runNow queues one pull job for nodes (signed nodes' certnames) at
// RunNowPriority, bumps it to the front of the queue, and tells the event
// hub about the job and the nodes, so that agents waiting on a check-in
// claim their runs at once. A node that already has a waiting pull run
// keeps it (coalesced), bumped and with the higher priority.
func (s *Server) runNow(ctx context.Context, who muster.Token, nodes []string) (SubmitResponse, error) {
	refund, err := s.admitJob(who)
	if err != nil {
		return SubmitResponse{}, err
	}
	stored := false
	defer func() {
		if !stored {
			refund()
		}
	}()
	spec, err := json.Marshal(muster.JobSpec{})
	if err != nil {
		return SubmitResponse{}, err
	}
	job := muster.Job{Kind: muster.JobPull, Spec: spec, Targets: nodes, Priority: RunNowPriority, CreatedBy: who.Name}
	if err := job.Validate(); err != nil {
		return SubmitResponse{}, badRequest("%s", joinLines(err))
	}
	res, err := s.store.SubmitJob(ctx, job)
	if errors.Is(err, muster.ErrInvalid) {
		return SubmitResponse{}, badRequest("%s", joinLines(err))
	} else if err != nil {
		return SubmitResponse{}, err
	}
	stored = true
	if err := s.store.BumpJob(ctx, res.Job.ID); err != nil {
		// The runs are queued at RunNowPriority all the same.
		s.log.Error("bumping a run-now job", "job", res.Job.ID, "err", err)
	}
	s.publish(res.Job.ID)
	s.publishNodes(ctx, nodes...)
	j := res.Job
	if got, err := s.store.GetJob(ctx, j.ID); err == nil {
		j = got
	}
	out := SubmitResponse{Job: jobView(j, true), Runs: res.Runs, Coalesced: res.Coalesced}
	if out.Coalesced == nil {
		out.Coalesced = []string{}
	}
	return out, nil
}

// handleCA shows the server's CA certificate.
func (s *Server) handleCA(w http.ResponseWriter, _ *http.Request, _ muster.Token) error {
	if s.cfg.CA == nil {
		return errNoCA()
	}
	c := s.cfg.CA.Cert()
	writeJSON(w, http.StatusOK, CAView{Certificate: string(pki.EncodeCertPEM(c.Raw)), Fingerprint: s.cfg.CA.Fingerprint(),
		Subject: c.Subject.String(), NotBefore: c.NotBefore, NotAfter: c.NotAfter})
	return nil
}
