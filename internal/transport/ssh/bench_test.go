package ssh_test

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/testkit/sshtest"
	"github.com/muster-run/muster/internal/transport/ssh"
)

// cpuTime is this process's user+system CPU time (sshd, a child, is not
// counted).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "client-cpu-ms/op")
}

// BenchmarkNewConnection measures a fresh connection plus one command.
func BenchmarkNewConnection(b *testing.B) {
	s := sshtest.Start(b, sshtest.Options{})
	tg := target(s, nil)
	cmd := &muster.Command{Line: "true"}
	b.ResetTimer()
	start := cpuTime()
	for range b.N {
		tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
		if _, err := tr.Exec(context.Background(), tg, cmd); err != nil {
			b.Fatal(err)
		}
		tr.Close()
	}
	reportCPU(b, start)
}

// BenchmarkExtraCommand measures one more command on an open connection.
func BenchmarkExtraCommand(b *testing.B) {
	s := sshtest.Start(b, sshtest.Options{})
	tg := target(s, nil)
	tr := ssh.New(ssh.Options{KnownHostsFiles: []string{s.KnownHostsFile}, SSHConfigFile: "none"})
	defer tr.Close()
	cmd := &muster.Command{Line: "true"}
	if _, err := tr.Exec(context.Background(), tg, cmd); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := cpuTime()
	for range b.N {
		if _, err := tr.Exec(context.Background(), tg, cmd); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}
