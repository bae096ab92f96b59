// Package sshtest starts a real OpenSSH sshd for tests and benchmarks. The
// server runs in the foreground as a child process, logs to a file that
// tests can inspect (connections accepted, sessions opened), and accepts the
// dedicated login user User with a freshly generated ed25519 client key.
package sshtest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/muster-run/muster/internal/testkit/procfs"
)

// SSHDPath is the OpenSSH server binary the package runs.
const SSHDPath = "/usr/sbin/sshd"

// Options configure a test server.
type Options struct {
	// ListenAll makes sshd listen on 0.0.0.0 so that every 127.x.y.z
	// address reaches it. By default it listens on 127.0.0.1 only.
	ListenAll bool
	// Port is the port to listen on; 0 picks a free one.
	Port int
	// ExtraConfig is placed verbatim at the top of sshd_config, so its
	// settings win over the defaults (sshd keeps the first value it reads).
	// It must not contain Match blocks.
	ExtraConfig string
	// LogLevel is sshd's LogLevel; default VERBOSE, which logs every
	// connection and every session. DEBUG1 also works.
	LogLevel string
}

// Server is a running sshd. Its fields are fixed for its lifetime, including
// across Restart.
type Server struct {
	// Dir holds every file the server uses.
	Dir string
	// Addr is "127.0.0.1:port".
	Addr string
	// Port is the listening port.
	Port int
	// User is the login user (the constant User).
	User string
	// ClientKeyFile is the client's private key (OpenSSH PEM, no passphrase)
	// and ClientKeyPEM its contents. ClientSigner is the same key parsed.
	ClientKeyFile string
	ClientKeyPEM  []byte
	ClientSigner  xssh.Signer
	// HostKey is the server's public host key and HostKeyFingerprint its
	// SHA256 fingerprint ("SHA256:...").
	HostKey            xssh.PublicKey
	HostKeyFingerprint string
	// KnownHostsFile lists HostKey for [127.0.0.1]:Port.
	KnownHostsFile string
	// SSHConfigFile is a client config usable with `ssh -F`.
	SSHConfigFile string
	// ConfigFile is sshd_config and LogFile sshd's log.
	ConfigFile string
	LogFile    string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a server for a test in a fresh directory and stops it when
// the test ends. Without sshd or root it skips the test, or fails it when
// MUSTER_TEST_REQUIRE_SSHD=1.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if reason := unavailable(); reason != "" {
		if os.Getenv("MUSTER_TEST_REQUIRE_SSHD") == "1" {
			t.Fatalf("sshtest: %s (MUSTER_TEST_REQUIRE_SSHD=1)", reason)
		}
		t.Skipf("sshtest: %s; skipping (set MUSTER_TEST_REQUIRE_SSHD=1 to fail instead)", reason)
	}
	dir, err := os.MkdirTemp("", "muster-sshtest-")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(dir, opts)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		if t.Failed() {
			if b, err := os.ReadFile(s.LogFile); err == nil {
				t.Logf("sshd log (%s):\n%s", s.LogFile, tail(b, 4000))
			}
		}
		os.RemoveAll(dir)
	})
	return s
}

func unavailable() string {
	if _, err := os.Stat(SSHDPath); err != nil {
		return SSHDPath + " is not installed (apt-get install openssh-server)"
	}
	if os.Geteuid() != 0 {
		return "tests with a real sshd need root (to create user " + User + ")"
	}
	return ""
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// New writes keys and configuration into dir and starts sshd. dir is
// chmod-ed 0755, and its parents must be traversable by User, who reads
// authorized_keys there (t.TempDir() is not: use os.MkdirTemp). The caller
// must Close the server.
func New(dir string, opts Options) (*Server, error) {
	if reason := unavailable(); reason != "" {
		return nil, errors.New("sshtest: " + reason)
	}
	if err := EnsureUser(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{Dir: dir, User: User,
		ClientKeyFile:  filepath.Join(dir, "client_ed25519"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		SSHConfigFile:  filepath.Join(dir, "ssh_config"),
		ConfigFile:     filepath.Join(dir, "sshd_config"),
		LogFile:        filepath.Join(dir, "sshd.log"),
	}
	hostPEM, hostPub, err := genKey("muster-test host")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "host_ed25519"), hostPEM, 0o600); err != nil {
		return nil, err
	}
	s.HostKey = hostPub
	s.HostKeyFingerprint = xssh.FingerprintSHA256(hostPub)
	clientPEM, clientPub, err := genKey("muster-test client")
	if err != nil {
		return nil, err
	}
	s.ClientKeyPEM = clientPEM
	if s.ClientSigner, err = xssh.ParsePrivateKey(clientPEM); err != nil {
		return nil, err
	}
	if err := os.WriteFile(s.ClientKeyFile, clientPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), xssh.MarshalAuthorizedKey(clientPub), 0o644); err != nil {
		return nil, err
	}

	port := opts.Port
	for attempt := 0; ; attempt++ {
		if opts.Port == 0 {
			if port, err = freePort(opts.ListenAll); err != nil {
				return nil, err
			}
		}
		s.Port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err := s.writeConfig(opts); err != nil {
			return nil, err
		}
		err = s.start()
		if err == nil {
			break
		}
		if opts.Port != 0 || attempt >= 4 {
			return nil, err
		}
	}
	if err := os.WriteFile(s.KnownHostsFile, nil, 0o644); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.AddKnownHost("127.0.0.1"); err != nil {
		s.Close()
		return nil, err
	}
	cfg := fmt.Sprintf(`Host *
  Port %d
  User %s
  IdentityFile %s
  IdentitiesOnly yes
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
  KexAlgorithms curve25519-sha256
  ConnectTimeout 10
`, s.Port, User, s.ClientKeyFile, s.KnownHostsFile)
	if err := os.WriteFile(s.SSHConfigFile, []byte(cfg), 0o644); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func genKey(comment string) (privPEM []byte, pub xssh.PublicKey, err error) {
	pk, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := xssh.MarshalPrivateKey(sk, comment)
	if err != nil {
		return nil, nil, err
	}
	pub, err = xssh.NewPublicKey(pk)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(block), pub, nil
}

func freePort(all bool) (int, error) {
	addr := "127.0.0.1:0"
	if all {
		addr = "0.0.0.0:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) writeConfig(opts Options) error {
	listen := "127.0.0.1"
	if opts.ListenAll {
		listen = "0.0.0.0"
	}
	level := opts.LogLevel
	if level == "" {
		level = "VERBOSE"
	}
	cfg := fmt.Sprintf(`%s
Port %d
ListenAddress %s
HostKey %s
PidFile %s
AuthorizedKeysFile %s
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin no
UsePAM no
StrictModes no
MaxStartups 1000:30:2000
MaxAuthTries 10
LogLevel %s
Subsystem sftp internal-sftp
`, opts.ExtraConfig, s.Port, listen, filepath.Join(s.Dir, "host_ed25519"), filepath.Join(s.Dir, "sshd.pid"),
		filepath.Join(s.Dir, "authorized_keys"), level)
	return os.WriteFile(s.ConfigFile, []byte(cfg), 0o644)
}

// start runs sshd in the foreground and waits until it listens.
func (s *Server) start() error {
	logStart := int64(0)
	if fi, err := os.Stat(s.LogFile); err == nil {
		logStart = fi.Size()
	}
	cmd := exec.Command(SSHDPath, "-D", "-f", s.ConfigFile, "-E", s.LogFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("sshtest: start sshd: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b, _ := os.ReadFile(s.LogFile)
		if int64(len(b)) >= logStart {
			b = b[logStart:]
		}
		if strings.Contains(string(b), "Server listening on") {
			break
		}
		select {
		case <-done:
			return fmt.Errorf("sshtest: sshd exited: %s", tail(b, 2000))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-done
			return fmt.Errorf("sshtest: sshd did not start listening: %s", tail(b, 2000))
		}
	}
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// AddKnownHost adds HostKey for each address (host names, IP addresses or
// knownhosts patterns such as "127.*") at Port to KnownHostsFile.
func (s *Server) AddKnownHost(hosts ...string) error {
	f, err := os.OpenFile(s.KnownHostsFile, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, h := range hosts {
		line := fmt.Sprintf("[%s]:%d %s", h, s.Port, xssh.MarshalAuthorizedKey(s.HostKey))
		if _, err := f.WriteString(line); err != nil {
			return err
		}
	}
	return nil
}

// PID returns the listening sshd's process id, or 0 when stopped.
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Stop kills sshd and every connection it serves (including the login
// user's processes below them). The files stay, so Restart can follow.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	pid := cmd.Process.Pid
	// Stop the listener first so it accepts nothing new, then kill every
	// per-connection process.
	cmd.Process.Signal(syscall.SIGSTOP)
	for _, p := range procfs.Descendants(pid) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	cmd.Process.Kill()
	<-done
}

// Restart stops the server and starts it again on the same port with the
// same keys. Existing connections die.
func (s *Server) Restart() error {
	s.Stop()
	var err error
	for i := 0; i < 50; i++ {
		if err = s.start(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// Close stops the server.
func (s *Server) Close() error {
	s.Stop()
	return nil
}

// ConnectionsAccepted counts the TCP connections sshd has accepted since
// New (across restarts), from the "Connection from" lines of its log.
func (s *Server) ConnectionsAccepted() int { return s.countLog("Connection from ") }

// SessionsOpened counts the sessions (exec, shell, subsystem) sshd has
// started, from the "Starting session:" lines of its log.
func (s *Server) SessionsOpened() int { return s.countLog("Starting session: ") }

// CountLog counts the log lines containing substr.
func (s *Server) CountLog(substr string) int { return s.countLog(substr) }

func (s *Server) countLog(substr string) int {
	f, err := os.Open(s.LogFile)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), substr) {
			n++
		}
	}
	return n
}
