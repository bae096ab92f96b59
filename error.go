package muster

import (
	"context"
	"errors"
	"fmt"
)

// Error kinds. They appear unchanged in JSON output and in the API.
const (
	KindConnect   = "muster/connect-error"
	KindAuth      = "muster/auth-error"
	KindCommand   = "muster/command-error"
	KindTask      = "muster/task-error"
	KindEscalate  = "muster/escalate-error"
	KindFile      = "muster/file-error"
	KindTimeout   = "muster/timeout-error"
	KindCancelled = "muster/cancelled"
	KindNotRun    = "muster/not-run"
	KindInvalid   = "muster/invalid-input"
	KindInternal  = "muster/exception-error"
)

// Error is a failure with a Bolt-style kind. It is the "_error" object of a
// failed result.
type Error struct {
	Kind      string         `json:"kind"`
	Msg       string         `json:"msg"`
	IssueCode string         `json:"issue_code,omitempty"`
	Details   map[string]any `json:"details"`
	// Err is the underlying cause, kept for errors.Is/As; never serialised.
	Err error `json:"-"`
}

func (e *Error) Error() string { return e.Msg }

// Unwrap returns the underlying cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error of the given kind.
func Errorf(kind, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Kind: kind, Msg: err.Error(), Details: map[string]any{}, Err: errors.Unwrap(err)}
}

// ContextError turns the done ctx into an error about what ("command on
// web1"): KindTimeout when its deadline passed, else KindCancelled. The
// message gives the context's cause when one was set (such as "job 7 was
// cancelled while running on web1") rather than a bare "context canceled",
// and the error wraps ctx.Err() for errors.Is.
func ContextError(ctx context.Context, what string) *Error {
	err := ctx.Err()
	kind, verb := KindCancelled, "was cancelled"
	if errors.Is(err, context.DeadlineExceeded) {
		kind, verb = KindTimeout, "timed out"
	}
	why := err
	if c := context.Cause(ctx); c != nil {
		why = c
	}
	return &Error{Kind: kind, Msg: fmt.Sprintf("%s %s: %v", what, verb, why), Details: map[string]any{}, Err: err}
}

// WithCode sets the issue code and returns e.
func (e *Error) WithCode(code string) *Error { e.IssueCode = code; return e }

// WithDetail adds one detail and returns e.
func (e *Error) WithDetail(k string, v any) *Error {
	if e.Details == nil {
		e.Details = map[string]any{}
	}
	e.Details[k] = v
	return e
}

// AsError converts any error into an *Error, keeping its kind if it already
// has one and otherwise classifying it as fallbackKind.
func AsError(err error, fallbackKind string) *Error {
	if err == nil {
		return nil
	}
	var me *Error
	if errors.As(err, &me) {
		return me
	}
	return &Error{Kind: fallbackKind, Msg: err.Error(), Details: map[string]any{}, Err: err}
}

// KindOf returns the kind of err, or "" when err carries none.
func KindOf(err error) string {
	var me *Error
	if errors.As(err, &me) {
		return me.Kind
	}
	return ""
}

// ErrForbidden is matched (errors.Is) by refusals of what the caller's
// identity may not do, such as a job on the server's own machine by a
// non-admin. The API answers them 403. Forbidden makes one.
var ErrForbidden = errors.New("not allowed for this caller")

// Forbidden returns an error that matches ErrForbidden and reads as the
// formatted message, which is meant for the caller.
func Forbidden(format string, args ...any) error {
	return &forbiddenError{fmt.Sprintf(format, args...)}
}

type forbiddenError struct{ msg string }

func (e *forbiddenError) Error() string { return e.msg }

// Is matches ErrForbidden.
func (e *forbiddenError) Is(target error) bool { return target == ErrForbidden }
