package action

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/muster-run/muster"
)

// Archive is a local file or directory packed once as a tar stream and
// sent to every target.
type Archive struct {
	Source string // the local path as the user gave it
	Base   string // the name of the top entry
	data   []byte
	// complete names the archive's last entry, beside Base: when it is
	// unpacked, the whole archive arrived.
	complete string
}

// Pack archives the file or directory at src, recursively, keeping modes
// and symbolic links.
func Pack(src string) (*Archive, error) {
	info, err := os.Lstat(src)
	if err != nil {
		return nil, fmt.Errorf("cannot upload %s: %w", src, errors.Unwrap(err))
	}
	base := filepath.Base(filepath.Clean(src))
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := filepath.Clean(src)
	add := func(p string, info fs.FileInfo) error {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := path.Join(base, filepath.ToSlash(rel))
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		hdr.Name = name
		hdr.Uname, hdr.Gname, hdr.Uid, hdr.Gid = "", "", 0, 0
		if info.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if _, err := io.Copy(tw, f); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
		return nil
	}
	if info.IsDir() {
		err = filepath.Walk(root, func(p string, info fs.FileInfo, err error) error {
			if err != nil {
				return err
			}
			if !info.IsDir() && !info.Mode().IsRegular() && info.Mode()&fs.ModeSymlink == 0 {
				return nil // sockets, devices and pipes are not copied
			}
			return add(p, info)
		})
	} else {
		err = add(root, info)
	}
	complete := ".muster-complete-" + randomToken()
	if err == nil {
		err = tw.WriteHeader(&tar.Header{Name: complete, Mode: 0o600, Typeflag: tar.TypeReg})
	}
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		return nil, fmt.Errorf("cannot pack %s: %w", src, err)
	}
	return &Archive{Source: src, Base: base, data: buf.Bytes(), complete: complete}, nil
}

// Upload sends the archive to dest on t in one channel: it is unpacked
// into a private temporary directory and moved into place with mv, so a
// directory upload keeps its tree and every mode. An archive cut short (the
// client went away) is never moved into place.
func (r *Runner) Upload(ctx context.Context, t *muster.Target, a *Archive, dest string, opts Options) *muster.Result {
	setup := setupMarker()
	prelude := privateDir(r.tmpdir(t, opts), setup) +
		fmt.Sprintf(`head -c %d | tar -xpof - -C "$d" && [ -f "$d"/%s ]`, len(a.data), quote(a.complete)) +
		` || { echo "` + setup + ` cannot unpack the upload (is tar installed?)" >&2; exit 1; }` + "\n"
	p := program{prelude: prelude, work: `mv -f "$d"/` + quote(a.Base) + ` ` + quote(dest), payload: a.data}
	res := r.execResult(ctx, t, "upload", a.Source, p, opts, setup)
	if res.OK() {
		res.Value = map[string]any{"_output": fmt.Sprintf("Uploaded '%s' to '%s:%s'", a.Source, t.Name, dest)}
	} else if res.Error.Kind == muster.KindCommand {
		res.Error = muster.Errorf(muster.KindFile, "Could not upload '%s' to '%s:%s': %s", a.Source, t.Name, dest,
			strings.TrimSpace(res.Value["stderr"].(string))).WithCode("WRITE_ERROR").WithDetail("exit_code", res.Value["exit_code"])
	}
	return res
}

// DownloadDir returns where Download stores what it fetches from t:
// destDir/<target name, escaped>, always one path component strictly
// inside destDir. The name is URL-path-escaped (so "/", a backslash, NUL
// and "%" are escaped); a name made only of dots ("." and ".." above all)
// has every dot escaped as %2E, and the empty name becomes "%". Distinct
// names give distinct directories: url.PathEscape is injective, escapes no
// dot, and never yields a bare "%".
func DownloadDir(destDir string, t *muster.Target) string {
	return filepath.Join(destDir, targetDirName(t.Name))
}

func targetDirName(name string) string {
	if name == "" {
		return "%"
	}
	if strings.Trim(name, ".") == "" {
		return strings.Repeat("%2E", len(name))
	}
	return url.PathEscape(name)
}

// Download fetches src from t, recursively, into DownloadDir(destDir, t),
// as a tar stream in one channel.
func (r *Runner) Download(ctx context.Context, t *muster.Target, src, destDir string, opts Options) *muster.Result {
	clean := path.Clean(src)
	dir, base := path.Split(clean)
	if dir == "" {
		dir = "."
	}
	local := DownloadDir(destDir, t)
	res := &muster.Result{Target: t.Name, Action: "download", Object: src, Value: map[string]any{}}
	if base == "" || base == "/" || base == "." || base == ".." {
		res.Error = muster.Errorf(muster.KindInvalid, "cannot download %q: name a file or directory, not %q", src, base)
		return res
	}
	if err := os.MkdirAll(local, 0o755); err != nil {
		res.Error = muster.Errorf(muster.KindFile, "cannot create %s: %w", local, err).WithCode("WRITE_ERROR")
		return res
	}
	pr, pw := io.Pipe()
	unpacked := make(chan error, 1)
	go func() {
		err := unpack(pr, local, base)
		if err == nil {
			_, err = io.Copy(io.Discard, pr) // drain tar's end-of-archive padding
		}
		_ = pr.CloseWithError(err) // on failure, stops the remote side's output
		unpacked <- err
	}()
	var stderr bytes.Buffer
	code, err := r.run(ctx, t, program{work: "tar -cf - -C " + quote(dir) + " " + quote(base)}, pw, &stderr, opts)
	_ = pw.Close()
	uerr := <-unpacked
	switch {
	case err != nil:
		res.Error = muster.AsError(err, muster.KindInternal)
	case code != 0:
		res.Error = muster.Errorf(muster.KindFile, "Could not download '%s:%s': %s", t.Name, src, strings.TrimSpace(stderr.String())).
			WithCode("READ_ERROR").WithDetail("exit_code", code)
	case uerr != nil:
		res.Error = muster.Errorf(muster.KindFile, "Could not save '%s:%s' under %s: %w", t.Name, src, local, uerr).WithCode("WRITE_ERROR")
	default:
		p := filepath.Join(local, base)
		res.Value = map[string]any{"path": p, "_output": fmt.Sprintf("Downloaded '%s:%s' to '%s'", t.Name, src, p)}
	}
	return res
}

// unpack extracts a tar stream into dir. Every entry must lie under base;
// absolute names, ".." and links that would be written through are refused.
func unpack(r io.Reader, dir, base string) error {
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		name := path.Clean(hdr.Name)
		if path.IsAbs(name) || name == ".." || strings.HasPrefix(name, "../") || (name != base && !strings.HasPrefix(name, base+"/")) {
			return fmt.Errorf("refusing unsafe path %q in the download", hdr.Name)
		}
		target := filepath.Join(dir, filepath.FromSlash(name))
		if err := noSymlinkParents(dir, target); err != nil {
			return err
		}
		mode := fs.FileMode(hdr.Mode).Perm()
		switch hdr.Typeflag {
		case tar.TypeDir:
			if fi, err := os.Lstat(target); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				// MkdirAll and Chmod would follow it out of dir.
				return fmt.Errorf("refusing to write through symbolic link %s", target)
			}
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
			if err := os.Chmod(target, mode|0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			_ = os.Remove(target) // replace, never write through an old link
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, tr)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
		default:
			// Devices, FIFOs and hard links are skipped, as scp does.
		}
	}
}

// noSymlinkParents refuses a path whose parent directories below root
// include a symbolic link, so a hostile archive cannot write outside root.
func noSymlinkParents(root, p string) error {
	rel, err := filepath.Rel(root, filepath.Dir(p))
	if err != nil || rel == "." {
		return err
	}
	cur := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		cur = filepath.Join(cur, part)
		if fi, err := os.Lstat(cur); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("refusing to write through symbolic link %s", cur)
		}
	}
	return nil
}
