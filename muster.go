// Package muster holds the vocabulary shared by every part of muster: targets,
// results, error kinds, and the Transport contract that the ssh and local
// adapters implement. It imports nothing else from this module.
package muster

import (
	"context"
	"io"
)

// Version is the release version, set at build time with
// -ldflags "-X github.com/muster-run/muster.Version=...".
var Version = "0.1.0-dev"

// Command is one process to start on a target. Line is handed to the
// target's login shell (`$SHELL -c Line` over SSH, `/bin/sh -c Line` locally),
// exactly as OpenSSH and Bolt do.
type Command struct {
	Line string
	// Stdin, when non-nil, is copied to the process's standard input and the
	// input is closed when it reaches EOF. When nil the process gets an
	// empty, closed standard input. Exec does not wait for Stdin to reach
	// EOF once the process has exited: a caller whose reader can block
	// (an io.Pipe) must unblock it after Exec returns.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output as it arrives. Either
	// may be nil to discard the stream.
	Stdout io.Writer
	Stderr io.Writer
}

// Transport runs commands on targets. Implementations must be safe for
// concurrent use by many goroutines, and must make cancellation of ctx
// reach the remote side: the channel is closed and the process signalled.
type Transport interface {
	// Exec runs cmd on t and returns its exit status. A non-nil error means
	// the command could not be run or did not finish (connection, auth,
	// cancellation); it should be, or wrap, a *Error with a Kind.
	Exec(ctx context.Context, t *Target, cmd *Command) (exitCode int, err error)
	// Close releases every connection the transport holds.
	Close() error
}
