package agent

import (
	"strings"
	"testing"
)

func TestTailBuffer(t *testing.T) {
	tests := []struct {
		name   string
		limit  int
		writes []string
		want   string
	}{
		{"fits", 10, []string{"abc", "def"}, "abcdef"},
		{"head and tail", 6, []string{"0123456789"}, "012\n[... 4 bytes not kept ...]\n789"},
		{"many small writes", 4, []string{"a", "b", "c", "d", "e", "f"}, "ab\n[... 2 bytes not kept ...]\nef"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewTailBuffer(tc.limit)
			for _, w := range tc.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, "--server"},
		{Config{Server: "s:1"}, "--data-dir"},
		{Config{Server: "s:1", DataDir: t.TempDir()}, "certname"},
		{Config{Server: "s:1", DataDir: t.TempDir(), Certname: "n1"}, "Exec"},
	} {
		if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) = %v, want an error naming %s", tc.cfg, err, tc.want)
		}
	}
}
