// Package builtin holds the task modules that ship inside muster, written
// for it with the parameters and result shapes Bolt documents for its
// own modules: package (install, uninstall, upgrade, status with apt, dnf
// or yum), service (start, stop, restart, enable, disable, status with
// systemd or sysvinit), facts (os, kernel and networking facts in
// facter's shape) and reboot (queue a reboot; reboot::last_boot_time to
// see that it happened). Every task is one POSIX sh script, since a
// target has nothing installed, and answers with one JSON object on
// stdout; a failure is Bolt's {"_error": {"kind", "msg", "details"}}.
// The helpers the scripts share live once, in the muster_common module
// (files/common.sh), which each task lists in its metadata's "files":
// muster ships it with the task, as Bolt does, and the script sources it
// from $PT__installdir.
//
// The modules are embedded in the binary. Dir writes them once into a
// content-addressed directory of the user's cache, which goes last on
// the module path, so a project's own module of the same name wins, as
// Bolt's bundled modules do.
package builtin

import (
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

//go:embed modules
var content embed.FS

// root is the folder of content that holds the modules.
const root = "modules"

// FS returns the built-in modules: one directory per module at the top.
func FS() fs.FS {
	sub, err := fs.Sub(content, root)
	if err != nil {
		panic(err) // root is embedded above: unreachable
	}
	return sub
}

// Modules lists the names of the built-in modules, sorted.
func Modules() []string {
	entries, err := fs.ReadDir(content, root)
	if err != nil {
		panic(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out
}

// file is one embedded file: its path below root, its content and the
// mode it is written with.
type file struct {
	rel  string
	data []byte
	mode os.FileMode
}

// files lists the embedded files in path order. Task executables (any
// file in a tasks/ folder but metadata and documentation) are 0755,
// everything else 0644.
func files() []file {
	var out []file
	err := fs.WalkDir(content, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := content.ReadFile(p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root+"/")
		mode := os.FileMode(0o644)
		if path.Base(path.Dir(rel)) == "tasks" && path.Ext(rel) != ".json" && path.Ext(rel) != ".md" {
			mode = 0o755
		}
		out = append(out, file{rel: rel, data: data, mode: mode})
		return nil
	})
	if err != nil {
		panic(err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].rel < out[j].rel })
	return out
}

// Hash is the hex SHA-256 of the embedded modules (every path, mode and
// content): the name of the directory Dir writes them to.
func Hash() string {
	hashOnce.Do(func() { hashHex = computeHash() })
	return hashHex
}

var (
	hashOnce sync.Once
	hashHex  string
)

func computeHash() string {
	h := sha256.New()
	for _, f := range files() {
		fmt.Fprintf(h, "%s\x00%o\x00%d\x00", f.rel, f.mode, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// hashLen is how much of Hash names the directory.
const hashLen = 16

// Path returns the module path entry of the built-in modules: Dir in
// <user cache dir>/muster/builtin. Without a user cache directory
// ($XDG_CACHE_HOME or $HOME) it uses muster-<uid> in the system's
// temporary directory, which must then be a directory of this user's that
// only this user can write. Every call checks the copy (Dir), so a copy
// removed or damaged while the process runs (a cache cleaner) is written
// again, and a changed $HOME or $XDG_CACHE_HOME is followed.
func Path() (string, error) {
	base, err := cacheBase()
	if err != nil {
		return "", err
	}
	return Dir(filepath.Join(base, "muster", "builtin"))
}

func cacheBase() (string, error) {
	if dir, err := os.UserCacheDir(); err == nil {
		return dir, nil
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("muster-%d", os.Getuid()))
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("built-in modules: no user cache directory, and %w", err)
	}
	if err := checkPrivate(dir); err != nil {
		return "", fmt.Errorf("built-in modules: no user cache directory, and %w", err)
	}
	return dir, nil
}

// Dir makes sure the built-in modules are in <parent>/<hash prefix>/ and
// returns that directory, a module path entry (it holds package/,
// service/, ...). The directory is written whole under a temporary name
// and renamed into place, so concurrent processes either find it
// complete or race to rename identical copies, and one wins. An existing
// directory whose files differ from the embedded ones (edited or
// truncated by hand) is replaced.
func Dir(parent string) (string, error) {
	final := filepath.Join(parent, Hash()[:hashLen])
	if intact(final) {
		return final, nil
	}
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("built-in modules: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, ".tmp-")
	if err != nil {
		return "", fmt.Errorf("built-in modules: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := write(tmp); err != nil {
		return "", fmt.Errorf("built-in modules: writing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, final); err == nil {
		return final, nil
	}
	if intact(final) { // another process renamed its copy first
		return final, nil
	}
	// A damaged copy is in the way: move it aside, then put ours in place.
	old := filepath.Join(parent, ".old-"+randomSuffix())
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("built-in modules: replacing damaged %s: %w", final, err)
	}
	defer os.RemoveAll(old)
	if err := os.Rename(tmp, final); err != nil && !intact(final) {
		return "", fmt.Errorf("built-in modules: %w", err)
	}
	return final, nil
}

// write puts every embedded file under dir, directories 0755.
func write(dir string) error {
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, f := range files() {
		p := filepath.Join(dir, filepath.FromSlash(f.rel))
		if err := mkdirs(dir, filepath.Dir(p)); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(p, f.mode); err != nil { // the umask may have taken bits away
			return err
		}
	}
	return nil
}

// mkdirs creates dir's missing parents below top with mode 0755
// whatever the umask.
func mkdirs(top, dir string) error {
	if dir == top || isDir(dir) {
		return nil
	}
	if err := mkdirs(top, filepath.Dir(dir)); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// intact reports whether dir holds every embedded file with its content
// and mode.
func intact(dir string) bool {
	for _, f := range files() {
		p := filepath.Join(dir, filepath.FromSlash(f.rel))
		st, err := os.Lstat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != f.mode || st.Size() != int64(len(f.data)) {
			return false
		}
		data, err := os.ReadFile(p)
		if err != nil || string(data) != string(f.data) {
			return false
		}
	}
	return true
}

func randomSuffix() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}
