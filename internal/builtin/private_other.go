//go:build !unix

package builtin

import (
	"fmt"
	"os"
)

// checkPrivate makes sure dir is a real directory (not a symlink).
func checkPrivate(dir string) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}
