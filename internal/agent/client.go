package agent

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/checkin"
)

// client posts the protocol's JSON to the server's agent listener over one
// kept-alive TLS connection.
type client struct {
	base string
	hc   *http.Client
	tr   *http.Transport
}

func newClient(server string, cfg *tls.Config) *client {
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConns: 2, IdleConnTimeout: 5 * time.Minute,
		TLSHandshakeTimeout: 30 * time.Second, ForceAttemptHTTP2: true}
	return &client{base: "https://" + server, hc: &http.Client{Transport: tr}, tr: tr}
}

func (c *client) close() { c.tr.CloseIdleConnections() }

// post sends in and decodes the answer into out; an error answer becomes
// an error carrying the server's message.
func (c *client) post(ctx context.Context, path string, in, out any) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "muster-agent/"+muster.Version)
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		se := &statusError{status: resp.StatusCode, msg: resp.Status}
		var e checkin.ErrorResponse
		if checkin.Decode(resp.Body, &e) == nil && e.Message != "" {
			se.msg = fmt.Sprintf("%d %s: %s", resp.StatusCode, e.Code, e.Message)
		}
		return se
	}
	return checkin.Decode(resp.Body, out)
}

// statusError is an error answer from the server.
type statusError struct {
	status int
	msg    string
}

func (e *statusError) Error() string { return "server answered " + e.msg }

// refused reports whether err is the server refusing the request itself
// (a 4xx answer), which sending it again would not change.
func refused(err error) bool {
	var se *statusError
	return errors.As(err, &se) && se.status >= 400 && se.status < 500
}
