//go:build unix

package builtin

import (
	"fmt"
	"os"
	"syscall"
)

// checkPrivate makes sure dir is a real directory (not a symlink) owned
// by this user that nobody else can write, so another user cannot plant
// task files in it.
func checkPrivate(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	switch {
	case !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && int(sys.Uid) != os.Getuid():
		return fmt.Errorf("%s belongs to uid %d, not to this user (uid %d)", dir, sys.Uid, os.Getuid())
	case st.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s can be written by other users (mode %o)", dir, st.Mode().Perm())
	}
	return nil
}
