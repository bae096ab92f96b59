package action

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/muster-run/muster"
)

// insideOneLevel reports why p is not exactly one path component strictly
// inside root, or "" when it is.
func insideOneLevel(root, p string) string {
	rel, err := filepath.Rel(root, p)
	switch {
	case err != nil:
		return err.Error()
	case rel == "." || rel == "":
		return "is the root itself"
	case rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)):
		return "is outside the root"
	case strings.ContainsRune(rel, filepath.Separator):
		return "is more than one level down"
	case filepath.Join(root, rel) != p:
		return "does not round-trip"
	}
	return ""
}

func TestDownloadDir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "dl")
	tests := []struct {
		name, want string
	}{
		{"web1", "web1"},
		{"web1.example.com", "web1.example.com"},
		{"..", "%2E%2E"},
		{".", "%2E"},
		{"...", "%2E%2E%2E"},
		{"", "%"},
		{"../etc", "..%2Fetc"},
		{"a/b", "a%2Fb"},
		{"/", "%2F"},
		{`a\b`, "a%5Cb"},
		{`..\..`, "..%5C.."},
		{"a\x00b", "a%00b"},
		{"%2E%2E", "%252E%252E"},
		{"%", "%25"},
		{"ssh://u@h:22", "ssh:%2F%2Fu@h:22"},
	}
	seen := map[string]string{}
	for _, tc := range tests {
		got := DownloadDir(root, &muster.Target{Name: tc.name})
		if want := filepath.Join(root, tc.want); got != want {
			t.Errorf("DownloadDir(%q) = %q, want %q", tc.name, got, want)
		}
		if why := insideOneLevel(root, got); why != "" {
			t.Errorf("DownloadDir(%q) = %q %s", tc.name, got, why)
		}
		if other, ok := seen[got]; ok {
			t.Errorf("DownloadDir(%q) and DownloadDir(%q) share %q", tc.name, other, got)
		}
		seen[got] = tc.name
	}
}

// FuzzDownloadDir checks that every target name maps to one path component
// strictly inside destDir, and that two names never share a directory.
func FuzzDownloadDir(f *testing.F) {
	for _, s := range []string{"..", ".", "", "...", "../x", "a/../..", "/", `\`, "\x00", "%", "%2E", "%2E%2E", "web1", " ..", ".. "} {
		f.Add(s, "..")
	}
	root := filepath.Join(f.TempDir(), "dl")
	f.Fuzz(func(t *testing.T, a, b string) {
		da := DownloadDir(root, &muster.Target{Name: a})
		if why := insideOneLevel(root, da); why != "" {
			t.Fatalf("DownloadDir(%q) = %q %s", a, da, why)
		}
		if db := DownloadDir(root, &muster.Target{Name: b}); a != b && da == db {
			t.Fatalf("DownloadDir(%q) and DownloadDir(%q) share %q", a, b, da)
		}
	})
}

// A target named ".." (or "." or "") downloads into its own directory
// under destDir, not into destDir's parent or destDir itself.
func TestDownloadDotNamesStayInside(t *testing.T) {
	src := filepath.Join(t.TempDir(), "hostname")
	must(t, os.WriteFile(src, []byte("h\n"), 0o644))
	for _, name := range []string{"..", ".", ""} {
		t.Run("name="+name, func(t *testing.T) {
			r, _, tg := localRunner(t)
			tg.Name = name
			dest := filepath.Join(t.TempDir(), "a", "dl")
			res := r.Download(context.Background(), tg, src, dest, Options{})
			if !res.OK() {
				t.Fatalf("download: %+v", res.Error)
			}
			p := res.Value["path"].(string)
			if why := insideOneLevel(dest, filepath.Dir(p)); why != "" {
				t.Fatalf("downloaded to %s, whose directory %s", p, why)
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != "h\n" {
				t.Fatalf("downloaded file: %q, %v", b, err)
			}
			for _, wrong := range []string{filepath.Join(dest, "hostname"), filepath.Join(filepath.Dir(dest), "hostname")} {
				if _, err := os.Lstat(wrong); err == nil {
					t.Errorf("%s was written, outside the target's directory", wrong)
				}
			}
		})
	}
}

type tarEntry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
}

func tarOf(t *testing.T, entries ...tarEntry) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			hdr.Size = 0
		}
		must(t, tw.WriteHeader(hdr))
		if e.typ == tar.TypeReg {
			_, err := tw.Write([]byte(e.body))
			must(t, err)
		}
	}
	must(t, tw.Close())
	return &buf
}

// A hostile download can neither write outside the download directory nor
// change anything outside it, whatever its entries and links.
func TestUnpackStaysInside(t *testing.T) {
	tests := []struct {
		name    string
		entries func(outside string) []tarEntry
	}{
		{"file through a linked directory", func(o string) []tarEntry {
			return []tarEntry{{name: "base/", typ: tar.TypeDir, mode: 0o755}, {name: "base/l", link: o, typ: tar.TypeSymlink},
				{name: "base/l/evil", typ: tar.TypeReg, mode: 0o644, body: "x"}}
		}},
		{"directory entry on a link chmods through it", func(o string) []tarEntry {
			return []tarEntry{{name: "base/", typ: tar.TypeDir, mode: 0o755}, {name: "base/l", link: o, typ: tar.TypeSymlink},
				{name: "base/l/", typ: tar.TypeDir, mode: 0o777}}
		}},
		{"base itself a link", func(o string) []tarEntry {
			return []tarEntry{{name: "base", link: o, typ: tar.TypeSymlink}, {name: "base/evil", typ: tar.TypeReg, mode: 0o644, body: "x"}}
		}},
		{"dot-dot inside", func(o string) []tarEntry {
			return []tarEntry{{name: "base/../evil", typ: tar.TypeReg, mode: 0o644, body: "x"}}
		}},
		{"relative link then file through it", func(o string) []tarEntry {
			return []tarEntry{{name: "base/", typ: tar.TypeDir, mode: 0o755}, {name: "base/up", link: "../..", typ: tar.TypeSymlink},
				{name: "base/up/evil", typ: tar.TypeReg, mode: 0o644, body: "x"}}
		}},
		{"file replaces a link, never writes through it", func(o string) []tarEntry {
			return []tarEntry{{name: "base/", typ: tar.TypeDir, mode: 0o755}, {name: "base/f", link: filepath.Join(o, "victim"), typ: tar.TypeSymlink},
				{name: "base/f", typ: tar.TypeReg, mode: 0o644, body: "x"}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outside := t.TempDir()
			must(t, os.Chmod(outside, 0o700))
			must(t, os.WriteFile(filepath.Join(outside, "victim"), []byte("safe"), 0o600))
			dir := filepath.Join(t.TempDir(), "dl", "web1")
			must(t, os.MkdirAll(dir, 0o755))
			_ = unpack(tarOf(t, tc.entries(outside)...), dir, "base") // refusing is fine; escaping is not
			if fi, err := os.Stat(outside); err != nil || fi.Mode().Perm() != 0o700 {
				t.Errorf("outside directory changed: %v %v", fi.Mode(), err)
			}
			if b, err := os.ReadFile(filepath.Join(outside, "victim")); err != nil || string(b) != "safe" {
				t.Errorf("outside file changed: %q %v", b, err)
			}
			for _, p := range []string{filepath.Join(outside, "evil"), filepath.Join(filepath.Dir(dir), "evil"), filepath.Join(dir, "evil")} {
				if _, err := os.Lstat(p); err == nil {
					t.Errorf("%s was written", p)
				}
			}
		})
	}
}
