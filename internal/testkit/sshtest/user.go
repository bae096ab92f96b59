package sshtest

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"syscall"
)

// User is the dedicated login user every test sshd accepts. Its login shell
// is /bin/sh so remote commands do not pay for a heavy shell start-up.
const User = "muster-test"

// SudoPassword is User's password. /etc/sudoers.d/muster-test lets User run
// anything through sudo after giving this password.
const SudoPassword = "muster-test-Sud0-pw"

const (
	userLockFile = "/run/lock/muster-test-user.lock"
	sudoersFile  = "/etc/sudoers.d/muster-test"
)

// EnsureUser creates the login user (idempotently, under a file lock so
// parallel test binaries do not race), sets its password to SudoPassword and
// installs its sudoers rule. It needs root.
func EnsureUser() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("sshtest: must run as root to create user %s", User)
	}
	if err := os.MkdirAll("/run/lock", 0o755); err != nil {
		return err
	}
	lf, err := os.OpenFile(userLockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("sshtest: user lock: %w", err)
	}
	defer lf.Close()
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("sshtest: flock: %w", err)
	}
	defer syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)

	if _, err := user.Lookup(User); err != nil {
		if out, err := exec.Command("useradd", "-m", "-s", "/bin/sh", User).CombinedOutput(); err != nil {
			return fmt.Errorf("sshtest: useradd %s: %v: %s", User, err, out)
		}
	}
	if ok, _ := passwordSet(); !ok {
		// Not locked first, then the sudo password.
		if out, err := exec.Command("usermod", "-p", "*", User).CombinedOutput(); err != nil {
			return fmt.Errorf("sshtest: usermod: %v: %s", err, out)
		}
		cmd := exec.Command("chpasswd")
		cmd.Stdin = strings.NewReader(User + ":" + SudoPassword + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("sshtest: chpasswd: %v: %s", err, out)
		}
	}
	rule := User + " ALL=(ALL:ALL) ALL\n"
	if b, err := os.ReadFile(sudoersFile); err != nil || string(b) != rule {
		if err := os.MkdirAll("/etc/sudoers.d", 0o755); err != nil {
			return err
		}
		tmp := sudoersFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(rule), 0o440); err != nil {
			return err
		}
		if err := os.Rename(tmp, sudoersFile); err != nil {
			return err
		}
	}
	return nil
}

// passwordSet reports whether User has a real password hash in /etc/shadow.
func passwordSet() (bool, error) {
	b, err := os.ReadFile("/etc/shadow")
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 1 && f[0] == User {
			return strings.HasPrefix(f[1], "$"), nil
		}
	}
	return false, nil
}
