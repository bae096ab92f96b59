package action

import (
	"bytes"
	"strings"
	"testing"

	"github.com/muster-run/muster/internal/task"
)

func TestScrubWriter(t *testing.T) {
	const r = task.Redacted
	long := strings.Repeat("x", scrubLongLine)
	for _, tc := range []struct {
		name    string
		secrets []string
		writes  []string
		want    string
	}{
		{"whole line", []string{"hunter2"}, []string{"pw=hunter2\n"}, "pw=" + r + "\n"},
		{"split across writes", []string{"hunter2"}, []string{"pw=hun", "ter2 ok\nnext"}, "pw=" + r + " ok\nnext"},
		{"two secrets", []string{"a1b2", "zz9"}, []string{"a1b2 zz9\n"}, r + " " + r + "\n"},
		{"empty secret ignored", []string{""}, []string{"plain\n"}, "plain\n"},
		{"long line split at a secret", []string{"s3cr3t"}, []string{long[:len(long)-3] + "s3c", "r3t end\n"},
			long[:len(long)-3] + r + " end\n"},
		{"long line with a whole secret across the cut", []string{"s3cr3t"}, []string{long[:len(long)-8] + "s3cr3tab"},
			long[:len(long)-8] + r + "ab"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			w := scrubbing(&out, tc.secrets)
			for _, s := range tc.writes {
				w.Write([]byte(s))
			}
			flush(w)
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", trim(out.String()), trim(tc.want))
			}
		})
	}
}

func trim(s string) string {
	if len(s) > 60 {
		return "..." + s[len(s)-60:]
	}
	return s
}
