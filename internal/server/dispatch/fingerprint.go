package dispatch

// fingerprint.go: the fingerprint of a successful run of a change-driven
// continuous job (muster.Run.Fingerprint), reported with its completion
// so the store compares it with the node's last one.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/muster-run/muster"
)

// fingerprint computes r's fingerprint from its successful outcome. For
// file:PATH it runs `sha256sum -- PATH` on the node through the same
// executor (the same pooled connection, as the same user), after the
// run's own action: the user's command is never changed.
func (d *Dispatcher) fingerprint(ctx context.Context, r muster.Run, out Outcome) (string, error) {
	spec, err := muster.ParseFingerprint(r.Fingerprint)
	if err != nil {
		return "", err
	}
	if spec.Kind != muster.FingerprintFile {
		return spec.Of(out.Result)
	}
	var orig muster.JobSpec
	_ = json.Unmarshal(r.Spec, &orig) // a spec the run could not decode has failed already
	cmd, _ := json.Marshal(muster.JobSpec{Command: spec.FileFingerprintCommand(), RunAs: orig.RunAs, Sealed: orig.Sealed})
	probe := r
	probe.Kind, probe.Spec = muster.JobCommand, cmd
	res := d.safeExecute(ctx, probe, Output{Stdout: io.Discard, Stderr: io.Discard})
	var v struct {
		Value struct {
			Stdout string `json:"stdout"`
			Stderr string `json:"stderr"`
		} `json:"value"`
	}
	_ = json.Unmarshal(res.Result, &v)
	if !res.OK {
		why := strings.TrimSpace(v.Value.Stderr)
		if why == "" {
			why = res.Error
		}
		return "", fmt.Errorf("%s on %s: %s", spec, r.Node, why)
	}
	return muster.ParseFileFingerprint(v.Value.Stdout)
}
