package pull

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/muster-run/muster/internal/yamlnode"
)

// config reads the document.
func (p *parser) config(doc *yaml.Node) (*Config, error) {
	c := &Config{File: p.file, Utilisation: DefaultUtilisation, MaxCheckIn: DefaultMaxCheckIn,
		RetryMin: DefaultRetryMin, RetryMax: DefaultRetryMax, Facts: Facts{UploadEvery: DefaultFactsUploadEvery}}
	root := doc
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 {
		root = yamlnode.Deref(doc.Content[0])
	}
	if yamlnode.IsNull(root) || doc.Kind == 0 {
		return nil, p.errf(0, "is empty: at least one backend is required")
	}
	pairs, err := p.mapping(root, "the file", "interval", "floor", "ceiling", "target_utilisation", "max_checkin",
		"retry_after", "backends", "runs", "facts", "rollouts")
	if err != nil {
		return nil, err
	}
	var lines struct{ floor, ceiling, backends int }
	for _, e := range pairs {
		switch e.key {
		case "interval":
			c.Interval, err = p.duration(e.val, "interval")
		case "floor":
			c.Floor, err = p.duration(e.val, "floor")
			lines.floor = e.line
		case "ceiling":
			c.Ceiling, err = p.duration(e.val, "ceiling")
			lines.ceiling = e.line
		case "target_utilisation":
			if c.Utilisation, err = p.number(e.val, "target_utilisation"); err == nil && (c.Utilisation <= 0 || c.Utilisation > 1) {
				err = p.errf(e.line, "target_utilisation must be in (0, 1], not %s", e.val.Value)
			}
		case "max_checkin":
			c.MaxCheckIn, err = p.duration(e.val, "max_checkin")
		case "retry_after":
			err = p.retry(c, e)
		case "backends":
			c.Backends, err = p.backends(e.val)
			lines.backends = e.line
		case "runs":
			c.Runs, err = p.runs(e.val)
		case "facts":
			err = p.facts(&c.Facts, e.val)
		case "rollouts":
			c.Rollouts, err = p.rollouts(e.val)
		}
		if err != nil {
			return nil, err
		}
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Floor == 0 {
		c.Floor = c.Interval
	}
	if c.Ceiling == 0 {
		c.Ceiling = c.Interval
	}
	switch {
	case c.Floor > c.Interval:
		return nil, p.errf(lines.floor, "floor %s is longer than the interval %s (want floor <= interval <= ceiling)", c.Floor, c.Interval)
	case c.Ceiling < c.Interval:
		return nil, p.errf(lines.ceiling, "ceiling %s is shorter than the interval %s (want floor <= interval <= ceiling)", c.Ceiling, c.Interval)
	case len(c.Backends) == 0:
		return nil, p.errf(lines.backends, "at least one backend is required")
	}
	if len(c.Runs) == 0 {
		c.Runs = []Run{defaultRun()}
	}
	return c, nil
}

func (p *parser) retry(c *Config, e kv) error {
	pairs, err := p.mapping(e.val, "retry_after", "min", "max")
	for _, r := range pairs {
		switch r.key {
		case "min":
			c.RetryMin, err = p.duration(r.val, "retry_after.min")
		case "max":
			c.RetryMax, err = p.duration(r.val, "retry_after.max")
		}
		if err != nil {
			return err
		}
	}
	if err == nil && c.RetryMin > c.RetryMax {
		err = p.errf(e.line, "retry_after: min %s is longer than max %s", c.RetryMin, c.RetryMax)
	}
	return err
}

func (p *parser) backends(n *yaml.Node) ([]Backend, error) {
	items, err := p.list(n, "backends")
	if err != nil {
		return nil, err
	}
	var out []Backend
	seen := map[string]int{}
	for i, it := range items {
		what := fmt.Sprintf("backends[%d]", i)
		pairs, err := p.mapping(it, what, "name", "max_running", "rate", "health")
		if err != nil {
			return nil, err
		}
		b := Backend{Line: it.Line}
		for _, e := range pairs {
			switch e.key {
			case "name":
				b.Name, err = p.nonEmpty(e.val, what+".name")
			case "max_running":
				if b.MaxRunning, err = p.integer(e.val, what+".max_running"); err == nil && b.MaxRunning < 1 {
					err = p.errf(e.val.Line, "%s.max_running must be at least 1, not %d", what, b.MaxRunning)
				}
			case "rate":
				if b.Rate, err = p.number(e.val, what+".rate"); err == nil && b.Rate <= 0 {
					err = p.errf(e.val.Line, "%s.rate must be positive runs per second, not %s", what, e.val.Value)
				}
			case "health":
				b.Health, err = p.health(e.val, what+".health")
			}
			if err != nil {
				return nil, err
			}
		}
		switch {
		case b.Name == "":
			return nil, p.errf(it.Line, "%s needs a name", what)
		case b.MaxRunning == 0:
			return nil, p.errf(it.Line, "backend %q needs max_running", b.Name)
		}
		if first, dup := seen[b.Name]; dup {
			return nil, p.errf(it.Line, "backend %q is declared twice (first at line %d)", b.Name, first)
		}
		seen[b.Name] = it.Line
		out = append(out, b)
	}
	return out, nil
}

func (p *parser) health(n *yaml.Node, what string) (*Health, error) {
	pairs, err := p.mapping(n, what, "url", "max_load")
	if err != nil {
		return nil, err
	}
	h := &Health{}
	for _, e := range pairs {
		switch e.key {
		case "url":
			h.URL, err = p.nonEmpty(e.val, what+".url")
		case "max_load":
			if h.MaxLoad, err = p.number(e.val, what+".max_load"); err == nil && h.MaxLoad <= 0 {
				err = p.errf(e.val.Line, "%s.max_load must be positive, not %s", what, e.val.Value)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if h.URL == "" {
		return nil, p.errf(n.Line, "%s needs a url", what)
	}
	return h, nil
}

func (p *parser) runs(n *yaml.Node) ([]Run, error) {
	items, err := p.list(n, "runs")
	if err != nil {
		return nil, err
	}
	var out []Run
	defaultAt := 0
	for i, it := range items {
		what := fmt.Sprintf("runs[%d]", i)
		if defaultAt > 0 {
			return nil, p.errf(it.Line, "%s is never used: the entry at line %d has no match and takes every node", what, defaultAt)
		}
		r, err := p.run(it, what)
		if err != nil {
			return nil, err
		}
		if r.Match.Any() {
			defaultAt = r.Line
		}
		out = append(out, r)
	}
	return out, nil
}

func (p *parser) run(n *yaml.Node, what string) (Run, error) {
	r := Run{Line: yamlnode.LineOf(n), Timeout: DefaultTimeout}
	pairs, err := p.mapping(n, what, "match", "command", "task", "params", "success_codes", "watch", "env", "timeout")
	if err != nil {
		return r, err
	}
	for _, e := range pairs {
		switch e.key {
		case "match":
			r.Match, err = p.match(e.val, what+".match")
		case "command":
			r.Command, err = p.nonEmpty(e.val, what+".command")
		case "task":
			r.Task, err = p.nonEmpty(e.val, what+".task")
		case "params":
			if e.val.Kind != yaml.MappingNode {
				err = p.errf(e.val.Line, "%s.params must be a mapping", what)
			} else {
				err = e.val.Decode(&r.Params)
				if err != nil {
					err = p.errf(e.val.Line, "%s.params: %v", what, err)
				}
			}
		case "success_codes":
			r.SuccessCodes, err = p.codes(e.val, what+".success_codes")
		case "watch":
			if r.Watch, err = p.strings(e.val, what+".watch"); err == nil {
				for _, w := range r.Watch {
					if !strings.HasPrefix(w, "/") {
						err = p.errf(e.val.Line, "%s.watch: %q is not an absolute path", what, w)
						break
					}
				}
			}
		case "env":
			r.Env, err = p.env(e.val, what+".env")
		case "timeout":
			r.Timeout, err = p.duration(e.val, what+".timeout")
		}
		if err != nil {
			return r, err
		}
	}
	switch {
	case r.Command == "" && r.Task == "" || r.Command != "" && r.Task != "":
		return r, p.errf(r.Line, "%s needs exactly one of command or task", what)
	case r.Params != nil && r.Task == "":
		return r, p.errf(r.Line, "%s: params go with a task, not a command", what)
	}
	if r.SuccessCodes == nil {
		r.SuccessCodes = []int{0}
	}
	return r, nil
}

func (p *parser) codes(n *yaml.Node, what string) ([]int, error) {
	items, err := p.list(n, what)
	if err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return nil, p.errf(yamlnode.LineOf(n), "%s must list at least one exit code", what)
	}
	var out []int
	for _, it := range items {
		c, err := p.integer(it, what+" item")
		if err != nil {
			return nil, err
		}
		if c < 0 || c > maxSuccessCode {
			return nil, p.errf(it.Line, "%s: exit code %d is outside 0..255", what, c)
		}
		if slices.Contains(out, c) {
			return nil, p.errf(it.Line, "%s: exit code %d is listed twice", what, c)
		}
		out = append(out, c)
	}
	return out, nil
}

func (p *parser) facts(f *Facts, n *yaml.Node) error {
	pairs, err := p.mapping(n, "facts", "upload_every", "blacklist")
	for _, e := range pairs {
		switch e.key {
		case "upload_every":
			f.UploadEvery, err = p.duration(e.val, "facts.upload_every")
		case "blacklist":
			var items []*yaml.Node
			if items, err = p.list(e.val, "facts.blacklist"); err == nil {
				for _, it := range items {
					var g string
					if g, err = p.glob(it, "facts.blacklist item"); err != nil {
						break
					}
					f.Blacklist = append(f.Blacklist, g)
				}
			}
		}
		if err != nil {
			return err
		}
	}
	return err
}

func (p *parser) rollouts(n *yaml.Node) ([]Rollout, error) {
	items, err := p.list(n, "rollouts")
	if err != nil {
		return nil, err
	}
	var out []Rollout
	seen := map[string]int{}
	for i, it := range items {
		what := fmt.Sprintf("rollouts[%d]", i)
		pairs, err := p.mapping(it, what, "name", "percent", "env", "match")
		if err != nil {
			return nil, err
		}
		r := Rollout{Line: it.Line, Percent: -1}
		for _, e := range pairs {
			switch e.key {
			case "name":
				r.Name, err = p.nonEmpty(e.val, what+".name")
			case "percent":
				if r.Percent, err = p.number(e.val, what+".percent"); err == nil && (r.Percent < 0 || r.Percent > 100) {
					err = p.errf(e.val.Line, "%s.percent must be in 0..100, not %s", what, e.val.Value)
				}
			case "env":
				r.Env, err = p.env(e.val, what+".env")
			case "match":
				r.Match, err = p.match(e.val, what+".match")
			}
			if err != nil {
				return nil, err
			}
		}
		switch {
		case r.Name == "":
			return nil, p.errf(it.Line, "%s needs a name", what)
		case r.Percent < 0:
			return nil, p.errf(it.Line, "rollout %q needs a percent", r.Name)
		case len(r.Env) == 0:
			return nil, p.errf(it.Line, "rollout %q needs env, the flags it sets", r.Name)
		}
		if first, dup := seen[r.Name]; dup {
			return nil, p.errf(it.Line, "rollout %q is declared twice (first at line %d)", r.Name, first)
		}
		seen[r.Name] = it.Line
		out = append(out, r)
	}
	return out, nil
}
