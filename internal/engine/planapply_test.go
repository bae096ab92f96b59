package engine

import (
	"context"
	"strings"
	"testing"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/plan"
)

// A resources step is checked before it starts: a declaration that cannot
// become Puppet code is an invalid-input error naming its index and
// field; a good list passes. (Applying runs in cmd/muster's tests, with
// real Puppet over the local transport and sshd.)
func TestCheckStepApply(t *testing.T) {
	p := &PlanRunner{}
	for _, tc := range []struct {
		name      string
		resources any
		want      string
		field     string
	}{
		{"good", []any{map[string]any{"file": "/tmp/x", "parameters": map[string]any{"content": "hi"}}}, "", ""},
		{"empty", []any{}, "", ""},
		{"not a list", "nginx", "resources: want a list", "resources"},
		{"bad type", []any{map[string]any{"type": "Not A Type", "title": "x"}}, "resources[0].type", "type"},
		{"bad attribute", []any{map[string]any{"notify": "a"}, map[string]any{"file": "/x", "parameters": map[string]any{"Bad": 1}}}, "resources[1].parameters.Bad", "parameters.Bad"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.CheckStep("apply", "", map[string]any{"resources": tc.resources}, plan.StepOptions{})
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckStep: %v", err)
				}
				return
			}
			me, ok := err.(*muster.Error)
			if !ok || me.Kind != muster.KindInvalid || !strings.Contains(me.Msg, tc.want) || me.Details["field"] != tc.field {
				t.Fatalf("CheckStep = %#v, want invalid input with %q, field %q", err, tc.want, tc.field)
			}
		})
	}
	// A run without applies has nothing to clean up.
	p.Cleanup(context.Background())
	if p.ap != nil {
		t.Error("Cleanup made an applier")
	}
}
