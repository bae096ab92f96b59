#!/usr/bin/env python3
"""Run sshd in the foreground as a child subreaper and count orphans' CPU.

Usage: sshd_reaper.py OUTFILE -- /usr/sbin/sshd -D -f CONFIG ...

bench/fanout/run.sh reads sshd's CPU as the listener's utime+stime+cutime+
cstime. That misses part of some connections: when a client ends the
connection with SSH_MSG_DISCONNECT (the OpenSSH client always does) or a TCP
reset, sshd's privileged monitor exits without waiting for the post-auth
session process, which is then orphaned and reaped by init, taking its CPU
(and that of the command it ran, ~4 ms per login with OpenSSH 9.2) out of
the listener's cutime/cstime. bench/fanout/sshdcpu measured this.

This wrapper sets PR_SET_CHILD_SUBREAPER, so such orphans are re-parented to
it instead of init, starts sshd (which must not daemonise: -D), reaps every
orphan with wait4 and keeps the sum of their utime+stime, in clock ticks, in
OUTFILE (rewritten after each reap). It exits with sshd.
"""
import ctypes
import os
import sys

PR_SET_CHILD_SUBREAPER = 36


def main():
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        sys.exit("usage: sshd_reaper.py OUTFILE -- SSHD ARGS...")
    out, argv = sys.argv[1], sys.argv[3:]
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER): %s" % os.strerror(ctypes.get_errno()))
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0

    def write():
        tmp = out + ".tmp"
        with open(tmp, "w") as f:
            f.write("%.3f\n" % (total * tck))
        os.rename(tmp, out)

    write()
    listener = os.fork()
    if listener == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    status = 0
    while True:
        try:
            pid, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == listener:
            status = os.waitstatus_to_exitcode(st)
            continue  # keep reaping orphans that are still running
        total += ru.ru_utime + ru.ru_stime
        write()
    sys.exit(status if status >= 0 else 128 - status)


if __name__ == "__main__":
    main()
