package muster

// change.go: the vocabulary of change-driven continuous jobs (seed 002's
// compile loop): how a node's result is fingerprinted, what is enqueued
// when the fingerprint changes, and which facts and other jobs' results
// move a node's pending run to the front.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The fingerprint kinds (Job.Fingerprint is one of them, with its
// argument after the colon).
const (
	FingerprintStdout = "stdout" // the run's stdout (value.stdout)
	FingerprintJSON   = "json"   // json:FIELD, a dotted field of the result's value
	FingerprintFile   = "file"   // file:PATH, the sha256 of a file on the target
)

// KindFingerprint is the error kind of a run whose result could not be
// fingerprinted (a file:PATH that cannot be read, say): the run fails.
const KindFingerprint = "muster/fingerprint-error"

// FingerprintSpec is a parsed Job.Fingerprint.
type FingerprintSpec struct {
	Kind string // FingerprintStdout, FingerprintJSON or FingerprintFile
	Arg  string // the field (json) or the absolute path (file)
}

// String renders the spec as ParseFingerprint reads it.
func (f FingerprintSpec) String() string {
	if f.Kind == FingerprintStdout {
		return f.Kind
	}
	return f.Kind + ":" + f.Arg
}

// MaxFingerprintSpec bounds a fingerprint spec's length.
const MaxFingerprintSpec = 1024

// ParseFingerprint reads "stdout", "json:FIELD" (FIELD a dotted path of
// non-empty keys, e.g. "facts.os.release") or "file:PATH" (an absolute
// path without NUL or newline).
func ParseFingerprint(s string) (FingerprintSpec, error) {
	if len(s) > MaxFingerprintSpec {
		return FingerprintSpec{}, fmt.Errorf("fingerprint: longer than %d bytes", MaxFingerprintSpec)
	}
	kind, arg, hasArg := strings.Cut(s, ":")
	switch kind {
	case FingerprintStdout:
		if hasArg {
			return FingerprintSpec{}, fmt.Errorf("fingerprint %q: stdout takes no argument", s)
		}
		return FingerprintSpec{Kind: kind}, nil
	case FingerprintJSON:
		if arg == "" || slices.Contains(strings.Split(arg, "."), "") || strings.ContainsAny(arg, "\x00\n") {
			return FingerprintSpec{}, fmt.Errorf("fingerprint %q: json needs a dotted field, e.g. json:status.version", s)
		}
		return FingerprintSpec{Kind: kind, Arg: arg}, nil
	case FingerprintFile:
		if !strings.HasPrefix(arg, "/") || strings.ContainsAny(arg, "\x00\n") {
			return FingerprintSpec{}, fmt.Errorf("fingerprint %q: file needs an absolute path, e.g. file:/etc/app.conf", s)
		}
		return FingerprintSpec{Kind: kind, Arg: arg}, nil
	}
	return FingerprintSpec{}, fmt.Errorf("fingerprint %q: want stdout, json:FIELD or file:PATH", s)
}

// Of computes the fingerprint of a successful run's result (Bolt's shape:
// {"value": {...}}) for the stdout and json kinds: the sha256, in hex, of
// the stdout text or of the field's JSON encoding. A missing field
// fingerprints as JSON null, so a field that appears is a change. The
// file kind needs the target (see FileFingerprintCommand).
func (f FingerprintSpec) Of(result json.RawMessage) (string, error) {
	var r struct {
		Value map[string]any `json:"value"`
	}
	if err := json.Unmarshal(result, &r); err != nil {
		return "", fmt.Errorf("fingerprint %s: the result is not a JSON object: %w", f, err)
	}
	switch f.Kind {
	case FingerprintStdout:
		s, _ := r.Value["stdout"].(string)
		return HashFingerprint([]byte(s)), nil
	case FingerprintJSON:
		var v any = r.Value
		for _, k := range strings.Split(f.Arg, ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		b, err := json.Marshal(v)
		if err != nil {
			return "", err
		}
		return HashFingerprint(b), nil
	}
	return "", fmt.Errorf("fingerprint %s: not computed from the result", f)
}

// FileFingerprintCommand is the command a worker runs on the target, on
// the same connection and after the run's own action, to fingerprint
// file:PATH; ParseFileFingerprint reads its output. The user's command is
// never changed.
func (f FingerprintSpec) FileFingerprintCommand() string {
	return "sha256sum -- " + ShellQuote(f.Arg)
}

// ParseFileFingerprint reads sha256sum's output: the hex digest first.
func ParseFileFingerprint(out string) (string, error) {
	sum, _, _ := strings.Cut(strings.TrimSpace(out), " ")
	if _, err := hex.DecodeString(sum); err != nil || len(sum) != 64 {
		return "", fmt.Errorf("sha256sum printed %q, not a digest", firstLine(out))
	}
	return strings.ToLower(sum), nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	if len(l) > 80 {
		l = l[:80]
	}
	return l
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// HashFingerprint is how every fingerprint is stored: sha256 in hex.
func HashFingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// OnChange is the action a continuous job enqueues for a node whose
// fingerprint changed: a one-shot job on that node, created by
// "on-change:<job id>". Kind is JobCommand or JobTask (Spec prepared like
// a submitted job's, secrets sealed) or JobPull ("agent-run": the node's
// agent runs now, like `muster node run`).
type OnChange struct {
	Kind JobKind
	Spec json.RawMessage
}

// OnChangeCreator is the CreatedBy of the jobs enqueued for a job's
// changes.
func OnChangeCreator(job int64) string { return fmt.Sprintf("on-change:%d", job) }

// MaxFactsUsed bounds Job.FactsUsed.
const MaxFactsUsed = 100

// checkChange validates a job's change-driven fields.
func (j *Job) checkChange() error {
	if j.Fingerprint == "" && j.OnChange == nil && len(j.FactsUsed) == 0 && j.DependsOnResult == 0 {
		return nil
	}
	if !j.Continuous {
		return errors.New("fingerprint, on-change, facts-used and depends-on-result need a continuous job")
	}
	if j.Fingerprint != "" {
		if _, err := ParseFingerprint(j.Fingerprint); err != nil {
			return err
		}
	}
	if j.OnChange != nil {
		switch {
		case j.Fingerprint == "":
			return errors.New("on-change: the job needs a fingerprint to notice changes")
		case j.OnChange.Kind != JobCommand && j.OnChange.Kind != JobTask && j.OnChange.Kind != JobPull:
			return fmt.Errorf("on-change: kind %q is not command, task or pull (agent-run)", j.OnChange.Kind)
		case len(j.OnChange.Spec) == 0 || !json.Valid(j.OnChange.Spec):
			return errors.New("on-change: the spec is not valid JSON")
		}
	}
	if len(j.FactsUsed) > MaxFactsUsed {
		return fmt.Errorf("facts-used: %d facts; at most %d", len(j.FactsUsed), MaxFactsUsed)
	}
	for _, f := range j.FactsUsed {
		if f == "" || slices.Contains(strings.Split(f, "."), "") || strings.ContainsAny(f, "\x00\n,") {
			return fmt.Errorf("facts-used: %q is not a dotted fact name like os.release", f)
		}
	}
	if j.DependsOnResult < 0 {
		return fmt.Errorf("depends-on-result: job id %d is not positive", j.DependsOnResult)
	}
	return nil
}

// FactsOverlap reports whether a change to any of the changed facts
// (dotted paths) touches one of used: the same path, or one inside the
// other ("os" changed touches "os.release", and "os.release.major"
// changed touches "os.release").
func FactsOverlap(used, changed []string) bool {
	for _, u := range used {
		for _, c := range changed {
			if u == c || strings.HasPrefix(u, c+".") || strings.HasPrefix(c, u+".") {
				return true
			}
		}
	}
	return false
}

// ChangedFacts returns the dotted paths of the facts that differ between
// old and new (objects compared key by key; any other value as a whole),
// sorted.
func ChangedFacts(old, new map[string]any) []string {
	var out []string
	var walk func(prefix string, a, b map[string]any)
	walk = func(prefix string, a, b map[string]any) {
		keys := map[string]bool{}
		for k := range a {
			keys[k] = true
		}
		for k := range b {
			keys[k] = true
		}
		for k := range keys {
			p := prefix + k
			av, bv := a[k], b[k]
			am, aok := av.(map[string]any)
			bm, bok := bv.(map[string]any)
			if aok && bok {
				walk(p+".", am, bm)
				continue
			}
			ja, _ := json.Marshal(av)
			jb, _ := json.Marshal(bv)
			_, inA := a[k]
			_, inB := b[k]
			if inA != inB || string(ja) != string(jb) {
				out = append(out, p)
			}
		}
	}
	walk("", old, new)
	slices.Sort(out)
	return out
}

// ResultChange is a node's fingerprint changing in a job: recorded in the
// transaction that completed the run.
type ResultChange struct {
	JobID    int64
	Node     string
	RunID    int64
	Previous string // "" for the node's first fingerprint in the job
	Current  string
	// OnChangeJob is the job enqueued for the node's on-change action (0
	// when the job has none); OnChangeKind its kind.
	OnChangeJob  int64
	OnChangeKind JobKind
	// Bumped counts the pending runs moved to the front because their
	// jobs declared DependsOnResult on this job.
	Bumped int
}

// Fingerprint is the last fingerprint stored for a job and node.
type Fingerprint struct {
	JobID     int64
	Node      string
	RunID     int64 // the run that produced it
	Value     string
	ChangedAt time.Time
	Changes   int // how many times it changed (the first counts)
}

// Changes is the store's side of change-driven jobs.
type Changes interface {
	// FactsChanged moves node's waiting runs of the live jobs whose
	// FactsUsed overlap facts (FactsOverlap) to the front of the queue, as
	// BumpJob would for that node alone, and returns those jobs' ids.
	FactsChanged(ctx context.Context, node string, facts []string) ([]int64, error)
	// ListFingerprints returns a job's stored fingerprints, by node.
	ListFingerprints(ctx context.Context, job int64) ([]Fingerprint, error)
}
