package puppet

// CheckVars reports the first variable that e uses and that is neither in
// known nor assigned or bound earlier in e, as a *SyntaxError, so that a
// misspelt variable fails at load time rather than when the code runs.
func (e *Expr) CheckVars(known map[string]bool) error {
	c := &varChecker{}
	c.walk(e.root, &checkScope{vars: map[string]bool{}, parent: &checkScope{vars: known}})
	if c.err != nil {
		return c.err
	}
	return nil
}

type checkScope struct {
	vars   map[string]bool
	parent *checkScope
}

func (s *checkScope) has(name string) bool {
	for ; s != nil; s = s.parent {
		if s.vars[name] {
			return true
		}
	}
	return false
}

type varChecker struct{ err *SyntaxError }

func (c *varChecker) walk(n node, s *checkScope) {
	if c.err != nil || n == nil {
		return
	}
	switch n := n.(type) {
	case *varNode:
		if !s.has(n.name) {
			c.err = &SyntaxError{Offset: n.off, Msg: "undefined variable $" + n.name + " (not a parameter, an earlier step name or a local variable)"}
		}
	case *blockNode:
		for _, st := range n.stmts {
			c.walk(st, s)
		}
	case *assignNode:
		c.walk(n.x, s)
		if s.vars == nil {
			s.vars = map[string]bool{}
		}
		s.vars[n.name] = true
	case *strNode:
		for _, p := range n.parts {
			c.walk(p, s)
		}
	case *arrayNode:
		for _, e := range n.elems {
			c.walk(e, s)
		}
	case *hashNode:
		for i := range n.keys {
			c.walk(n.keys[i], s)
			c.walk(n.vals[i], s)
		}
	case *indexNode:
		c.walk(n.x, s)
		for _, e := range n.idx {
			c.walk(e, s)
		}
	case *callNode:
		c.walk(n.recv, s)
		for _, a := range n.args {
			c.walk(a, s)
		}
		if n.lambda != nil {
			ls := &checkScope{vars: map[string]bool{}, parent: s}
			for _, p := range n.lambda.params {
				ls.vars[p] = true
			}
			c.walk(n.lambda.body, ls)
		}
	case *binNode:
		c.walk(n.l, s)
		c.walk(n.r, s)
	case *unNode:
		c.walk(n.x, s)
	case *ifNode:
		c.walk(n.cond, s)
		c.walk(n.then, &checkScope{parent: s})
		if n.els != nil {
			c.walk(n.els, &checkScope{parent: s})
		}
	}
}
