package apply

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/muster-run/muster"
)

// bundle is the module path packed as one tar archive (<module>/...),
// named by its content hash. Its last entry, bundleComplete, tells a whole
// archive from one cut short.
type bundle struct {
	data []byte
	hash string
}

const bundleComplete = ".muster-complete"

// skipped are what a module carries for development only: version
// control, and (at the module's top) its tests, fixtures and build output,
// which puppet apply never reads.
var skippedAnywhere = map[string]bool{".git": true, ".svn": true, ".hg": true}
var skippedTop = map[string]bool{"spec": true, "pkg": true, ".bundle": true, "vendor": true}

// packModules archives every module (name -> directory), in name order,
// with files in lexical order and no timestamps or owners, so that the same
// modules always give the same hash. Symbolic links stay links.
func packModules(modules map[string]string) (*bundle, error) {
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range names {
		root := modules[name]
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			rel = filepath.ToSlash(rel)
			top := rel == "." || !strings.Contains(rel, "/")
			if d.IsDir() && (skippedAnywhere[d.Name()] || top && skippedTop[d.Name()]) && rel != "." {
				return filepath.SkipDir
			}
			entry := name
			if rel != "." {
				entry += "/" + rel
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			hdr := &tar.Header{Name: entry, Mode: int64(info.Mode().Perm() | 0o400), Format: tar.FormatPAX}
			switch {
			case d.IsDir():
				hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, entry+"/", int64(info.Mode().Perm()|0o700)
				return tw.WriteHeader(hdr)
			case info.Mode()&fs.ModeSymlink != 0:
				link, err := os.Readlink(p)
				if err != nil {
					return err
				}
				hdr.Typeflag, hdr.Linkname, hdr.Mode = tar.TypeSymlink, link, 0o777
				return tw.WriteHeader(hdr)
			case info.Mode().IsRegular():
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				hdr.Typeflag, hdr.Size = tar.TypeReg, int64(len(b))
				if err := tw.WriteHeader(hdr); err != nil {
					return err
				}
				_, err = tw.Write(b)
				return err
			}
			return nil // sockets, devices: not module content
		})
		if err != nil {
			return nil, muster.Errorf(muster.KindFile, "packing module %s (%s): %v", name, root, err)
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: bundleComplete, Mode: 0o600, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(buf.Bytes())
	return &bundle{data: buf.Bytes(), hash: hex.EncodeToString(sum[:12])}, nil
}

func (b *bundle) String() string { return fmt.Sprintf("modules %s (%d bytes)", b.hash, len(b.data)) }
