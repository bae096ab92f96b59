// Command sshdcpu measures how much CPU one OpenSSH sshd spends per login
// for different SSH clients: muster's internal/transport/ssh transport or CLI, raw
// golang.org/x/crypto/ssh clients with experimental settings, and the
// OpenSSH ssh binary. It starts its own sshd (keys, user and config from
// internal/testkit/sshtest, on 127.0.0.1 and a free port), runs K sequential logins
// that each run `true`, and counts sshd's CPU as the listener's
// utime+stime+cutime+cstime from /proc, read once every per-connection
// process has been reaped, plus the CPU of the session processes sshd
// orphans. CPU time per login is much less noisy than wall time on a shared
// machine; -interleave makes it less sensitive still.
//
// Orphans: when a client ends with SSH_MSG_DISCONNECT (OpenSSH's ssh always
// does) or a TCP reset, sshd's monitor exits without waiting for its
// post-auth session process, so that process (and the command it ran) is
// reaped by init and never reaches the listener's cutime. This program is a
// child subreaper, adopts and reaps those processes itself and reports
// their CPU separately; the bracketed figures in the summary are what
// reading the listener alone (run.sh before sshd_reaper.py) would report.
//
// Run as root (sshtest creates the login user):
//
//	go run ./bench/fanout/sshdcpu -k 200 -reps 3 -interleave -modes muster,ssh,raw,raw+rst
//
// Modes (comma-separated; each rep runs every mode):
//
//	muster        internal/transport/ssh Transport, Exec then Release (host-key-check
//	              false, as in run.sh)
//	muster-strict the same with known_hosts checking
//	cli=PATH      the muster binary at PATH, one process per login, like run.sh
//	ssh           OpenSSH ssh -o KexAlgorithms=curve25519-sha256 (with a .pub
//	              file next to the key, as run.sh has)
//	ssh-nopub     the same without the .pub file
//	ssh-unbound   the same with PubkeyAuthentication=unbound (publickey
//	              instead of publickey-hostbound-v00@openssh.com)
//	raw[+opt...]  x/crypto/ssh directly, closing the connection with a FIN
//	              (what internal/transport/ssh did before it reset idle connections);
//	              options:
//	  hk          HostKeyAlgorithms ssh-ed25519 only
//	  chacha      chacha20-poly1305 first (OpenSSH's default cipher)
//	  buf         coalesce writes (one write syscall per burst of packets)
//	  rst         close the TCP connection with a reset (SO_LINGER 0)
//	  nopipes     no stdin/stdout/stderr pipes (x/crypto copies and sends EOF)
//	  nosess      only authenticate, open no session
//
// Flags: -interleave alternates the modes login by login and measures each
// login alone; -perf adds perf stat counts (task-clock, context switches,
// page faults) per login; -perf-record ARGS records a perf profile per
// mode; -log LEVEL sets sshd's LogLevel (default ERROR, as run.sh) and
// -keep keeps the directory with sshd.log and the perf data.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/testkit/procfs"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/ssh"
)

var clkTck = 100.0 // getconf CLK_TCK on Linux

const prSetChildSubreaper = 36

// sshdTicks returns utime+stime+cutime+cstime of pid in clock ticks.
func sshdTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime..cstime are fields 14..17.
	var sum int64
	for _, x := range f[11:15] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

func waitIdle(pid int) error {
	deadline := time.Now().Add(30 * time.Second)
	for len(procfs.Children(pid)) > 0 || rp.reap() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd %d still has children after 30s", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// The program is a child subreaper (prctl PR_SET_CHILD_SUBREAPER): a
// per-connection sshd process whose parent exits without waiting for it
// (sshd's monitor does that when the client sends SSH_MSG_DISCONNECT: the
// post-auth child, and the command it ran, are orphaned) is re-parented to
// this process instead of init, and reaper collects its CPU with wait4.
// Without this, the listener's cutime/cstime (what run.sh reads) misses
// that CPU.
type reaper struct {
	mu       sync.Mutex
	listener int
	mine     map[int]bool // clients started by this program (os/exec waits them)
	cpu      time.Duration
	orphans  int
}

func (r *reaper) start(cmd *exec.Cmd) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := cmd.Start(); err != nil {
		return err
	}
	r.mine[cmd.Process.Pid] = true
	return nil
}

func (r *reaper) done(pid int) {
	r.mu.Lock()
	delete(r.mine, pid)
	r.mu.Unlock()
}

// children lists this process's children other than the listener and the
// clients it started; zombie marks those that exited.
func (r *reaper) children() (all, zombie []int) {
	for _, p := range procfs.All() {
		if p.PPID != os.Getpid() || p.PID == r.listener || r.mine[p.PID] {
			continue
		}
		all = append(all, p.PID)
		if p.State == 'Z' {
			zombie = append(zombie, p.PID)
		}
	}
	return all, zombie
}

// reap waits for every exited orphan and returns how many remain.
func (r *reaper) reap() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	all, zombies := r.children()
	for _, pid := range zombies {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		if p, err := syscall.Wait4(pid, &ws, syscall.WNOHANG, &ru); err == nil && p == pid {
			r.cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			r.orphans++
		}
	}
	return len(all) - len(zombies)
}

func (r *reaper) loop() {
	for {
		r.reap()
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *reaper) totals() (time.Duration, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cpu, r.orphans
}

// login runs one login + command.
type login func() error

var rp = &reaper{mine: map[int]bool{}}

type env struct {
	s      *sshtest.Server
	dir    string
	signer xssh.Signer
	writes atomic.Int64 // write calls by raw clients (buf counts flushes)
}

func (e *env) musterMode(strict bool) (login, func()) {
	cfg := map[string]any{"private-key": e.s.ClientKeyFile, "host-key-check": strict}
	tg := &muster.Target{Name: "t", Transport: "ssh", Host: "127.0.0.1", Port: e.s.Port, User: e.s.User,
		Config: map[string]any{"ssh": cfg}}
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{e.s.KnownHostsFile}, SSHConfigFile: "none"})
	return func() error {
		code, err := tr.Exec(context.Background(), tg, &muster.Command{Line: "true"})
		tr.Release(tg)
		if err == nil && code != 0 {
			err = fmt.Errorf("exit code %d", code)
		}
		return err
	}, func() { tr.Close() }
}

func (e *env) sshMode(pub bool, extra ...string) (login, func()) {
	cfgFile := filepath.Join(e.dir, "ssh_config.bench")
	key := e.s.ClientKeyFile
	if pub {
		key = filepath.Join(e.dir, "client_pub_ed25519")
	}
	return func() error {
		args := append([]string{"-F", cfgFile, "-i", key, "-o", "KexAlgorithms=curve25519-sha256"}, extra...)
		cmd := exec.Command("ssh", append(args, "127.0.0.1", "true")...)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := rp.start(cmd); err != nil {
			return err
		}
		err := cmd.Wait()
		rp.done(cmd.Process.Pid)
		if err != nil {
			return fmt.Errorf("ssh: %v: %s", err, out.String())
		}
		return nil
	}, func() {}
}

// cliMode runs a muster binary per login, as run.sh does (one target).
func (e *env) cliMode(bin string) (login, func(), error) {
	inv := filepath.Join(e.dir, "inventory.yaml")
	doc := fmt.Sprintf("config:\n  transport: ssh\n  ssh: {user: %s, port: %d, private-key: %s, host-key-check: false}\n"+
		"targets:\n  - 127.0.0.1\n", e.s.User, e.s.Port, e.s.ClientKeyFile)
	if err := os.WriteFile(inv, []byte(doc), 0o644); err != nil {
		return nil, nil, err
	}
	return func() error {
		cmd := exec.Command(bin, "command", "run", "true", "-t", "all", "-i", inv, "--format", "json")
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := rp.start(cmd); err != nil {
			return err
		}
		err := cmd.Wait()
		rp.done(cmd.Process.Pid)
		if err != nil || !strings.Contains(out.String(), `"success"`) {
			return fmt.Errorf("%s: %v: %s", bin, err, out.String())
		}
		return nil
	}, func() {}, nil
}

// bufConn coalesces writes: Write appends to a buffer and a flusher
// goroutine writes whatever has accumulated in one syscall.
type bufConn struct {
	net.Conn
	e      *env
	mu     sync.Mutex
	buf    []byte
	err    error
	signal chan struct{}
	closed chan struct{}
}

func newBufConn(c net.Conn, e *env) *bufConn {
	b := &bufConn{Conn: c, e: e, signal: make(chan struct{}, 1), closed: make(chan struct{})}
	go b.flusher()
	return b
}

func (b *bufConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (b *bufConn) flusher() {
	var out []byte
	for {
		select {
		case <-b.signal:
		case <-b.closed:
			return
		}
		b.mu.Lock()
		out, b.buf = b.buf, out[:0]
		b.mu.Unlock()
		if len(out) == 0 {
			continue
		}
		b.e.writes.Add(1)
		if _, err := b.Conn.Write(out); err != nil {
			b.mu.Lock()
			b.err = err
			b.mu.Unlock()
		}
	}
}

func (b *bufConn) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return b.Conn.Close()
}

type countConn struct {
	net.Conn
	e *env
}

func (c *countConn) Write(p []byte) (int, error) {
	c.e.writes.Add(1)
	return c.Conn.Write(p)
}

// rawMode logs in with x/crypto/ssh directly, configured by opts.
func (e *env) rawMode(opts map[string]bool) (login, func()) {
	kex := []string{xssh.KeyExchangeCurve25519, "curve25519-sha256@libssh.org"}
	ciphers := []string{xssh.CipherAES128GCM, xssh.CipherChaCha20Poly1305}
	if opts["chacha"] {
		ciphers = []string{xssh.CipherChaCha20Poly1305, xssh.CipherAES128GCM}
	}
	cfg := &xssh.ClientConfig{
		Config:          xssh.Config{KeyExchanges: kex, Ciphers: ciphers},
		User:            e.s.User,
		Auth:            []xssh.AuthMethod{xssh.PublicKeys(e.signer)},
		HostKeyCallback: xssh.InsecureIgnoreHostKey(),
		Timeout:         10 * time.Second,
	}
	if opts["hk"] {
		cfg.HostKeyAlgorithms = []string{xssh.KeyAlgoED25519}
	}
	return func() error {
		nc, err := net.Dial("tcp", e.s.Addr)
		if err != nil {
			return err
		}
		var c net.Conn = &countConn{Conn: nc, e: e}
		if opts["buf"] {
			c = newBufConn(nc, e)
		}
		sc, chans, reqs, err := xssh.NewClientConn(c, e.s.Addr, cfg)
		if err != nil {
			c.Close()
			return err
		}
		client := xssh.NewClient(sc, chans, reqs)
		defer client.Close()
		if opts["nosess"] {
			return nil
		}
		sess, err := client.NewSession()
		if err != nil {
			return err
		}
		if !opts["nopipes"] {
			stdin, _ := sess.StdinPipe()
			out, _ := sess.StdoutPipe()
			errp, _ := sess.StderrPipe()
			go io.Copy(io.Discard, out)
			go io.Copy(io.Discard, errp)
			if err := sess.Start("true"); err != nil {
				return err
			}
			stdin.Close()
		} else if err := sess.Start("true"); err != nil {
			return err
		}
		err = sess.Wait()
		sess.Close()
		if opts["rst"] {
			nc.(*net.TCPConn).SetLinger(0)
		}
		return err
	}, func() {}
}

func (e *env) mode(name string) (login, func(), error) {
	switch name {
	case "muster":
		l, c := e.musterMode(false)
		return l, c, nil
	case "muster-strict":
		l, c := e.musterMode(true)
		return l, c, nil
	case "ssh":
		l, c := e.sshMode(true)
		return l, c, nil
	case "ssh-nopub":
		l, c := e.sshMode(false)
		return l, c, nil
	case "ssh-unbound":
		l, c := e.sshMode(true, "-o", "PubkeyAuthentication=unbound")
		return l, c, nil
	}
	if bin, ok := strings.CutPrefix(name, "cli="); ok {
		l, c, err := e.cliMode(bin)
		return l, c, err
	}
	parts := strings.Split(name, "+")
	if parts[0] != "raw" {
		return nil, nil, fmt.Errorf("unknown mode %q", name)
	}
	opts := map[string]bool{}
	for _, o := range parts[1:] {
		switch o {
		case "hk", "chacha", "buf", "nopipes", "nosess", "rst":
			opts[o] = true
		default:
			return nil, nil, fmt.Errorf("unknown raw option %q", o)
		}
	}
	l, c := e.rawMode(opts)
	return l, c, nil
}

func main() {
	k := flag.Int("k", 200, "sequential logins per measurement")
	reps := flag.Int("reps", 3, "repetitions of every mode")
	modes := flag.String("modes", "muster,ssh", "comma-separated modes")
	logLevel := flag.String("log", "ERROR", "sshd LogLevel")
	keep := flag.Bool("keep", false, "keep the server directory")
	interleave := flag.Bool("interleave", false, "alternate the modes login by login and measure each login alone (less sensitive to load from other processes)")
	usePerf := flag.Bool("perf", false, "also count sshd's task-clock, context switches and page faults with perf stat")
	record := flag.String("perf-record", "", "perf record with these arguments (e.g. \"-e page-faults -c 1 -g\") into <dir>/<mode>-<rep>.perf.data")
	extra := flag.String("sshd-config", "", "extra sshd_config lines (\\n-separated)")
	flag.Parse()

	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0); errno != 0 {
		fatal(fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %v", errno))
	}
	dir, err := os.MkdirTemp("", "muster-sshdcpu-")
	if err != nil {
		fatal(err)
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	// sshtest writes keys and config and creates the user; it waits for
	// "Server listening" in the log, so start at VERBOSE, then restart sshd
	// here with the wanted LogLevel (run.sh uses ERROR).
	s, err := sshtest.New(dir, sshtest.Options{ExtraConfig: strings.ReplaceAll(*extra, `\n`, "\n")})
	if err != nil {
		fatal(err)
	}
	s.Close()
	pid, stop, err := startSSHD(s, *logLevel)
	if err != nil {
		fatal(err)
	}
	defer stop()
	e := &env{s: s, dir: dir, signer: s.ClientSigner}
	// Like run.sh: a .pub next to the key, and the peers' client config.
	pubKey := filepath.Join(dir, "client_pub_ed25519")
	if err := os.WriteFile(pubKey, s.ClientKeyPEM, 0o600); err != nil {
		fatal(err)
	}
	if err := os.WriteFile(pubKey+".pub", xssh.MarshalAuthorizedKey(s.ClientSigner.PublicKey()), 0o644); err != nil {
		fatal(err)
	}
	sshCfg := fmt.Sprintf("Host *\n  Port %d\n  User %s\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n"+
		"  UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 60\n", s.Port, s.User)
	if err := os.WriteFile(filepath.Join(dir, "ssh_config.bench"), []byte(sshCfg), 0o644); err != nil {
		fatal(err)
	}
	rp.listener = pid
	go rp.loop()
	fmt.Printf("sshd pid %d on %s, dir %s, K=%d\n", pid, s.Addr, dir, *k)

	names := strings.Split(*modes, ",")
	results := map[string][]float64{}
	listenerRes := map[string][]float64{}
	if *interleave {
		for r := 0; r < *reps; r++ {
			interleaved(e, pid, names, *k, r, results, listenerRes)
		}
		printSummary(names, results, listenerRes)
		return
	}
	for r := 0; r < *reps; r++ {
		for _, name := range names {
			l, closeFn, err := e.mode(name)
			if err != nil {
				fatal(err)
			}
			if err := waitIdle(pid); err != nil {
				fatal(err)
			}
			e.writes.Store(0)
			t0, err := sshdTicks(pid)
			if err != nil {
				fatal(err)
			}
			o0, n0 := rp.totals()
			var pf *perfStat
			if *usePerf {
				if pf, err = startPerf(pid, filepath.Join(dir, "perf.out"), nil); err != nil {
					fatal(err)
				}
			} else if *record != "" {
				out := filepath.Join(dir, fmt.Sprintf("%s-%d.perf.data", name, r+1))
				if pf, err = startPerf(pid, "", append([]string{"record", "-q", "-o", out}, strings.Fields(*record)...)); err != nil {
					fatal(err)
				}
			}
			w0 := time.Now()
			for i := 0; i < *k; i++ {
				if err := l(); err != nil {
					fatal(fmt.Errorf("%s login %d: %w", name, i, err))
				}
			}
			closeFn()
			wall := time.Since(w0)
			if err := waitIdle(pid); err != nil {
				fatal(err)
			}
			t1, _ := sshdTicks(pid)
			perfLine := ""
			if pf != nil {
				perfLine = pf.stop(*k)
			}
			o1, n1 := rp.totals()
			listenerMS := float64(t1-t0) / clkTck * 1000 / float64(*k)
			orphanMS := float64(o1-o0) / float64(time.Millisecond) / float64(*k)
			ms := listenerMS + orphanMS
			results[name] = append(results[name], ms)
			listenerRes[name] = append(listenerRes[name], listenerMS)
			wr := ""
			if n := e.writes.Load(); n > 0 {
				wr = fmt.Sprintf(" client writes/login %.1f", float64(n)/float64(*k))
			}
			fmt.Printf("rep %d %-20s sshd CPU %6.2f ms/login (listener+children %6.2f, orphans %5.2f, %.2f orphans/login)  wall %6.2f ms/login%s\n",
				r+1, name, ms, listenerMS, orphanMS, float64(n1-n0)/float64(*k),
				float64(wall)/float64(time.Millisecond)/float64(*k), wr)
			if perfLine != "" {
				fmt.Printf("      perf per login: %s\n", perfLine)
			}
		}
	}
	printSummary(names, results, listenerRes)
}

func printSummary(names []string, results, listenerRes map[string][]float64) {
	fmt.Println("summary: sshd CPU ms/login, each rep; median; [listener+children only, as run.sh reads it]")
	for _, name := range names {
		fmt.Printf("  %-20s %s   [%s]\n", name, summary(results[name]), summary(listenerRes[name]))
	}
}

// interleaved runs one login of every mode in turn, k times (rotating
// which mode goes first), and measures each login alone, so that load
// from other processes on the machine affects every mode alike.
func interleaved(e *env, pid int, names []string, k, r int, results, listenerRes map[string][]float64) {
	logins := make([]login, len(names))
	closers := make([]func(), len(names))
	for i, name := range names {
		var err error
		if logins[i], closers[i], err = e.mode(name); err != nil {
			fatal(err)
		}
	}
	listener := make([]int64, len(names))
	orphan := make([]time.Duration, len(names))
	wall := make([]time.Duration, len(names))
	for i := 0; i < k; i++ {
		for j := range names {
			m := (i + j) % len(names)
			if err := waitIdle(pid); err != nil {
				fatal(err)
			}
			t0, err := sshdTicks(pid)
			if err != nil {
				fatal(err)
			}
			o0, _ := rp.totals()
			w0 := time.Now()
			if err := logins[m](); err != nil {
				fatal(fmt.Errorf("%s login %d: %w", names[m], i, err))
			}
			wall[m] += time.Since(w0)
			if err := waitIdle(pid); err != nil {
				fatal(err)
			}
			t1, _ := sshdTicks(pid)
			o1, _ := rp.totals()
			listener[m] += t1 - t0
			orphan[m] += o1 - o0
		}
	}
	for i, name := range names {
		closers[i]()
		lms := float64(listener[i]) / clkTck * 1000 / float64(k)
		oms := float64(orphan[i]) / float64(time.Millisecond) / float64(k)
		results[name] = append(results[name], lms+oms)
		listenerRes[name] = append(listenerRes[name], lms)
		fmt.Printf("rep %d %-20s sshd CPU %6.2f ms/login (listener+children %6.2f, orphans %5.2f)  wall %6.2f ms/login\n",
			r+1, name, lms+oms, lms, oms, float64(wall[i])/float64(time.Millisecond)/float64(k))
	}
}

// perfStat is a running `perf stat -p <listener>`; counters are inherited
// by every process the listener forks from then on.
type perfStat struct {
	cmd  *exec.Cmd
	file string
}

func startPerf(pid int, file string, args []string) (*perfStat, error) {
	if args == nil {
		args = []string{"stat", "-x", ",", "-o", file, "-e", "task-clock,context-switches,cpu-migrations,page-faults"}
	}
	cmd := exec.Command("perf", append(args, "-p", strconv.Itoa(pid))...)
	if err := rp.start(cmd); err != nil {
		return nil, err
	}
	time.Sleep(300 * time.Millisecond) // let it attach
	return &perfStat{cmd: cmd, file: file}, nil
}

func (p *perfStat) stop(k int) string {
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
	rp.done(p.cmd.Process.Pid)
	if p.file == "" {
		return ""
	}
	b, err := os.ReadFile(p.file)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Split(l, ",")
		if len(f) < 3 || f[0] == "" {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		unit := f[1]
		if unit == "" {
			unit = "#"
		}
		out = append(out, fmt.Sprintf("%s %.3f %s", f[2], v/float64(k), unit))
	}
	return strings.Join(out, ", ")
}

func summary(xs []float64) string {
	v := append([]float64(nil), xs...)
	sort.Float64s(v)
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%.2f", x))
	}
	return fmt.Sprintf("%s; median %.2f", strings.Join(parts, " "), v[len(v)/2])
}

var cleanup []func()

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "sshdcpu:", err)
	for _, f := range cleanup {
		f()
	}
	os.Exit(1)
}

// startSSHD runs sshd in the foreground with s's config at logLevel and
// waits until it accepts connections.
func startSSHD(s *sshtest.Server, logLevel string) (int, func(), error) {
	b, err := os.ReadFile(s.ConfigFile)
	if err != nil {
		return 0, nil, err
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(l, "LogLevel ") {
			lines = append(lines, l)
		}
	}
	lines = append(lines, "LogLevel "+logLevel)
	if err := os.WriteFile(s.ConfigFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return 0, nil, err
	}
	cmd := exec.Command(sshtest.SSHDPath, "-D", "-f", s.ConfigFile, "-E", s.LogFile)
	if err := cmd.Start(); err != nil {
		return 0, nil, err
	}
	pid := cmd.Process.Pid
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	cleanup = append(cleanup, stop)
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", s.Addr)
		if err == nil {
			// Read the banner so sshd does not log an aborted handshake.
			buf := make([]byte, 64)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			c.Read(buf)
			c.Close()
			break
		}
		if i > 200 {
			stop()
			return 0, nil, fmt.Errorf("sshd did not start: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pid, stop, nil
}
