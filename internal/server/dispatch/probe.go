package dispatch

// probe.go is the backend health probe that feeds capacity's health gate.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/muster-run/muster/internal/capacity"
)

// prober probes HealthURL every HealthInterval, starting at once, and
// feeds the results to the health gate. When the gate opens it wakes the
// claim loop.
func (d *Dispatcher) prober(ctx context.Context) {
	client := d.cfg.HTTPClient
	if client == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		defer tr.CloseIdleConnections()
		client = &http.Client{Transport: tr}
	}
	tick := time.NewTicker(d.cfg.HealthInterval)
	defer tick.Stop()
	for {
		p := Probe(ctx, client, d.cfg.HealthURL, d.cfg.HealthTimeout)
		if ctx.Err() != nil {
			return
		}
		if d.cap.Observe(p) {
			if open, why := d.cap.Health(); open {
				d.log.Info("health gate open: admitting runs again", "url", d.cfg.HealthURL, "load", p.Load)
				signal(d.kick)
			} else {
				d.log.Warn("health gate closed: no new runs start", "why", why)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// maxProbeBody bounds how much of a probe's answer is read.
const maxProbeBody = 64 << 10

// Probe GETs target within timeout and judges the answer: a 2xx status is
// healthy, and the body may report a load, as JSON {"load": 1.5} or as a
// plain number ("1.5\n"); Load is NaN when it reports none.
func Probe(ctx context.Context, client *http.Client, target string, timeout time.Duration) capacity.Probe {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	p := capacity.Probe{Load: math.NaN()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		p.Err = err
		return p
	}
	req.Header.Set("Accept", "application/json, text/plain;q=0.9")
	resp, err := client.Do(req)
	if err != nil {
		p.Err = unwrapURLError(err)
		return p
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxProbeBody))
	p.Status = resp.StatusCode
	p.OK = resp.StatusCode >= 200 && resp.StatusCode < 300
	if err != nil && p.OK {
		p.Err = err
		return p
	}
	p.Load = ParseLoad(body)
	return p
}

// ParseLoad reads a load figure from a probe's body: a JSON object with a
// numeric "load" field, or the body as a plain number. It returns NaN when
// there is neither.
func ParseLoad(body []byte) float64 {
	var doc struct {
		Load *float64 `json:"load"`
	}
	if json.Unmarshal(body, &doc) == nil && doc.Load != nil {
		return *doc.Load
	}
	if f, err := strconv.ParseFloat(strings.TrimSpace(string(body)), 64); err == nil && !math.IsInf(f, 0) {
		return f
	}
	return math.NaN()
}

// unwrapURLError drops net/http's `Get "url":` prefix: the gate's reason
// names the URL already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
