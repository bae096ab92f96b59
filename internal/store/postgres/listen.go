package postgres

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Backoff between attempts to get the listener's connection back.
const (
	listenRetryMin = 100 * time.Millisecond
	listenRetryMax = 5 * time.Second
)

// listenCheck is how long the listener waits for a notification before it
// pings its connection: a database host that vanished without closing the
// connection is noticed within about this long, not when TCP gives up.
// Each listener reads it once, when it starts (tests shorten it).
var listenCheck = 30 * time.Second

// listener LISTENs on the work and node channels on its own connection
// and calls signal for every notification, with its channel and payload.
// When the connection breaks it reconnects with capped exponential backoff
// and calls signal once per channel with an empty payload when it listens
// again, as anything may have been announced while it was away.
type listener struct {
	url    string
	signal func(channel, payload string)
	check  time.Duration
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	pid   uint32 // backend of the current connection, 0 while there is none
	conns int    // connections made so far
}

// listen connects and LISTENs before it returns, so that no notification
// sent after Open is missed, then keeps listening in a goroutine until
// stop.
func listen(ctx context.Context, url string, signal func(channel, payload string)) (*listener, error) {
	conn, err := connectAndListen(ctx, url)
	if err != nil {
		return nil, err
	}
	bg, cancel := context.WithCancel(context.Background())
	l := &listener{url: url, signal: signal, check: listenCheck, cancel: cancel, done: make(chan struct{})}
	l.connected(conn)
	go l.run(bg, conn)
	return l, nil
}

func connectAndListen(ctx context.Context, url string) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return nil, err
	}
	for _, ch := range channels {
		if _, err := conn.Exec(ctx, "LISTEN "+ch); err != nil {
			closeConn(conn)
			return nil, err
		}
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

func (l *listener) connected(conn *pgx.Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.conns++
	l.pid = 0
	if conn != nil {
		l.pid = conn.PgConn().PID()
	}
}

// run waits for notifications on conn, and on a new connection whenever
// that one breaks, until ctx is cancelled.
func (l *listener) run(ctx context.Context, conn *pgx.Conn) {
	defer close(l.done)
	wait := listenRetryMin
	for {
		for {
			n, ok := l.wait(ctx, conn)
			if !ok {
				break
			}
			l.signal(n.Channel, n.Payload)
		}
		closeConn(conn)
		l.mu.Lock()
		l.pid = 0
		l.mu.Unlock()
		for conn = nil; conn == nil; {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			var err error
			if conn, err = connectAndListen(ctx, l.url); err != nil {
				if errors.Is(ctx.Err(), context.Canceled) {
					return
				}
				wait = min(2*wait, listenRetryMax)
			}
		}
		wait = listenRetryMin
		l.connected(conn)
		for _, ch := range channels {
			l.signal(ch, "")
		}
	}
}

// wait waits for a notification on conn and returns it; it reports false
// when the connection is lost or ctx ends. Every l.check without a
// notification it pings the connection.
func (l *listener) wait(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, bool) {
	for {
		wctx, cancel := context.WithTimeout(ctx, l.check)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			return n, true
		}
		// A timeout leaves the connection usable (pgx interrupts the read
		// with a deadline); anything else is fatal to it.
		if ctx.Err() != nil || conn.IsClosed() || !errors.Is(err, context.DeadlineExceeded) {
			return nil, false
		}
		pctx, cancel := context.WithTimeout(ctx, l.check)
		err = conn.Ping(pctx)
		cancel()
		if err != nil {
			return nil, false
		}
	}
}

// stop ends the listener and waits for its goroutine. It may be called
// more than once.
func (l *listener) stop() {
	l.once.Do(l.cancel)
	<-l.done
}

// state returns the current connection's backend pid (0 if none) and how
// many connections the listener has made.
func (l *listener) state() (pid uint32, conns int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pid, l.conns
}
