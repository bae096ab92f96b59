package postgres

import "time"

// ListenerState exposes the listener's backend pid (0 while disconnected)
// and connection count to the tests.
func ListenerState(s *Store) (pid uint32, conns int) { return s.l.state() }

// SetListenCheck sets how long listeners started from now on wait before
// pinging their connection, and returns the previous value.
func SetListenCheck(d time.Duration) time.Duration {
	old := listenCheck
	listenCheck = d
	return old
}
