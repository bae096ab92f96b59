package api

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/muster-run/muster"
)

func loadDoc(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc["openapi"] != "3.1.0" {
		t.Fatalf("openapi version %v", doc["openapi"])
	}
	return doc
}

// docOp returns the operation object of method and path, or nil.
func docOp(doc map[string]any, method, path string) map[string]any {
	paths, _ := doc["paths"].(map[string]any)
	item, _ := paths[path].(map[string]any)
	op, _ := item[strings.ToLower(method)].(map[string]any)
	return op
}

// TestOpenAPIMatchesRoutes: the document lists exactly the routes the
// mux registers, with the same method, path, role and path parameters.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := loadDoc(t)
	var fromDoc, fromMux []string
	for p, item := range doc["paths"].(map[string]any) {
		for m := range item.(map[string]any) {
			if slices.Contains([]string{"get", "post", "put", "patch", "delete", "head", "options"}, m) {
				fromDoc = append(fromDoc, strings.ToUpper(m)+" "+p)
			}
		}
	}
	for _, rt := range routeTable() {
		fromMux = append(fromMux, rt.Pattern())
		op := docOp(doc, rt.Method, rt.Path)
		if op == nil {
			continue
		}
		role, _ := op["x-muster-role"].(string)
		sec, hasSec := op["security"].([]any)
		switch {
		case rt.Role == "" && (!hasSec || len(sec) != 0):
			t.Errorf("%s: the unauthenticated route must say security: []", rt.Pattern())
		case rt.Role != "" && role != string(rt.Role):
			t.Errorf("%s: documented role %q, the route needs %q", rt.Pattern(), role, rt.Role)
		}
		responses, _ := op["responses"].(map[string]any)
		if rt.Role != "" && (responses["401"] == nil || responses["403"] == nil) {
			t.Errorf("%s: 401 and 403 are not documented", rt.Pattern())
		}
		if rt.Body && (responses["400"] == nil || responses["413"] == nil || responses["415"] == nil) {
			t.Errorf("%s: 400, 413 and 415 are not documented", rt.Pattern())
		}
		if (op["requestBody"] != nil) != rt.Body {
			t.Errorf("%s: requestBody documented %v, route takes a body %v", rt.Pattern(), op["requestBody"] != nil, rt.Body)
		}
		var params []string
		for _, p := range asSlice(op["parameters"]) {
			if pm := p.(map[string]any); pm["in"] == "path" {
				params = append(params, pm["name"].(string))
			}
		}
		var want []string
		for _, m := range regexp.MustCompile(`\{(\w+)\}`).FindAllStringSubmatch(rt.Path, -1) {
			want = append(want, m[1])
		}
		if !slices.Equal(params, want) {
			t.Errorf("%s: documented path parameters %v, want %v", rt.Pattern(), params, want)
		}
	}
	sort.Strings(fromDoc)
	sort.Strings(fromMux)
	if !slices.Equal(fromDoc, fromMux) {
		t.Errorf("openapi.json and the routes differ:\n doc: %v\n mux: %v", fromDoc, fromMux)
	}
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// TestOpenAPIRequestExamples validates example requests against the
// documented request schemas, and checks the checker on bad ones.
func TestOpenAPIRequestExamples(t *testing.T) {
	doc := loadDoc(t)
	reqSchema := func(method, path string) any {
		return docOp(doc, method, path)["requestBody"].(map[string]any)["content"].(map[string]any)["application/json"].(map[string]any)["schema"]
	}
	task := SubmitRequest{Kind: muster.JobTask, Targets: Targets{Nodes: []string{"web1", "db1"}},
		Spec: muster.JobSpec{Task: "mod::echo", Params: map[string]any{"n": 3}, RunAs: "root",
			Secrets: map[string]string{"sudo_password": "pw"}},
		RunAt: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Every: Duration(time.Hour)}
	script := SubmitRequest{Kind: muster.JobScript, Targets: Targets{Spec: "web*"},
		Spec: muster.JobSpec{Script: "x.sh", ScriptBody: []byte("echo"), Args: []string{"a"}}, Continuous: true}
	good := []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/jobs", exampleSubmit()},
		{"POST", "/api/v1/jobs", task},
		{"POST", "/api/v1/jobs", script},
		{"POST", "/api/v1/jobs", commandJob("web1", "uptime")},
		{"POST", "/api/v1/tokens", TokenRequest{Name: "ci", Role: muster.RoleViewer}},
		{"POST", "/api/v1/enroll-tokens", EnrollTokenRequest{Name: "rack7", Uses: 5, Expires: Duration(48 * time.Hour),
			Certnames: "web*.example.com, db1.example.com"}},
		{"POST", "/api/v1/enroll-tokens", EnrollTokenRequest{Name: "one-off"}},
		{"POST", "/api/v1/pull-runs", PullRunRequest{Targets: Targets{Spec: "web*.example.com"}}},
		{"POST", "/api/v1/pull-runs", PullRunRequest{Targets: Targets{Nodes: []string{"web1.example.com"}}}},
	}
	for _, g := range good {
		if errs := validateJSON(doc, reqSchema(g.method, g.path), g.body); len(errs) > 0 {
			t.Errorf("%s %s example %+v does not validate: %v", g.method, g.path, g.body, errs)
		}
	}
	bad := []struct {
		path, body string
	}{
		{"/api/v1/jobs", `{"targets":"web1","spec":{"command":"x"}}`},
		{"/api/v1/jobs", `{"kind":"command","spec":{"command":"x"}}`},
		{"/api/v1/jobs", `{"kind":"command","targets":"web1"}`},
		{"/api/v1/jobs", `{"kind":"shell","targets":"web1","spec":{}}`},
		{"/api/v1/jobs", `{"kind":"command","targets":5,"spec":{}}`},
		{"/api/v1/jobs", `{"kind":"command","targets":"web1","spec":{},"colour":1}`},
		{"/api/v1/tokens", `{"name":"x"}`},
		{"/api/v1/tokens", `{"name":"x","role":"root"}`},
		{"/api/v1/enroll-tokens", `{"uses":2}`},
		{"/api/v1/enroll-tokens", `{"name":"x","uses":0}`},
		{"/api/v1/enroll-tokens", `{"name":"x","role":"admin"}`},
		{"/api/v1/pull-runs", `{}`},
		{"/api/v1/pull-runs", `{"targets":5}`},
		{"/api/v1/pull-runs", `{"targets":[]}`},
	}
	for _, b := range bad {
		var v any
		_ = json.Unmarshal([]byte(b.body), &v)
		if errs := validateJSON(doc, reqSchema("POST", b.path), v); len(errs) == 0 {
			t.Errorf("POST %s %s validates, but the server refuses it", b.path, b.body)
		}
	}
}

// TestOpenAPIResponses sends every route's example request as an admin
// and validates the answer against the documented schema of its status.
func TestOpenAPIResponses(t *testing.T) {
	e := newEnv(t)
	doc := loadDoc(t)
	e.finishAll(e.submit(commandJob("web1,db1", "ls")).Job.ID, muster.OutcomeSucceeded)
	for _, rt := range routeTable() {
		ex := routeExamples[rt.Pattern()]
		if ex == nil {
			continue
		}
		p, body := ex(e)
		r := e.doJSON(rt.Method, p, e.tokens[muster.RoleAdmin], body)
		checkResponse(t, doc, rt, r)
		if rt.Role != "" {
			checkResponse(t, doc, rt, e.doJSON(rt.Method, p, "", body))
		}
	}
	// Error answers are documented too.
	r := e.doJSON("GET", "/api/v1/jobs/99999", e.tokens[muster.RoleAdmin], nil)
	checkResponse(t, doc, route{Method: "GET", Path: "/api/v1/jobs/{id}"}, r)
	r = e.doJSON("POST", "/api/v1/jobs", e.tokens[muster.RoleViewer], exampleSubmit())
	checkResponse(t, doc, route{Method: "POST", Path: "/api/v1/jobs"}, r)
}

func checkResponse(t *testing.T, doc map[string]any, rt route, r response) {
	t.Helper()
	responses := docOp(doc, rt.Method, rt.Path)["responses"].(map[string]any)
	resp, _ := resolveRef(doc, responses[strconv.Itoa(r.status)]).(map[string]any)
	if resp == nil {
		t.Errorf("%s: status %d is not documented (%s)", rt.Pattern(), r.status, r.body)
		return
	}
	content, _ := resp["content"].(map[string]any)
	ct := strings.TrimSpace(strings.Split(r.header.Get("Content-Type"), ";")[0])
	media, _ := content[ct].(map[string]any)
	if media == nil {
		t.Errorf("%s %d: content type %q is not documented", rt.Pattern(), r.status, ct)
		return
	}
	var bodies []any
	schema := media["schema"]
	switch ct {
	case "application/json":
		var v any
		if err := json.Unmarshal([]byte(r.body), &v); err != nil {
			t.Errorf("%s: invalid JSON: %v", rt.Pattern(), err)
		}
		bodies = append(bodies, v)
	case "text/event-stream":
		schema = media["x-event-data"]
		sc := bufio.NewScanner(strings.NewReader(r.body))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var v any
				_ = json.Unmarshal([]byte(d), &v)
				bodies = append(bodies, v)
			}
		}
		if len(bodies) == 0 {
			t.Errorf("%s: no events", rt.Pattern())
		}
	default:
		return
	}
	for _, b := range bodies {
		if errs := validateJSON(doc, schema, b); len(errs) > 0 {
			t.Errorf("%s %d: the answer does not match the documented schema: %v\n%s", rt.Pattern(), r.status, errs, r.body)
		}
	}
}

func resolveRef(doc map[string]any, v any) any {
	for {
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		ref, ok := m["$ref"].(string)
		if !ok {
			return v
		}
		var cur any = doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			cur = cur.(map[string]any)[part]
		}
		v = cur
	}
}

// validateJSON checks v (any Go value, marshalled to JSON first) against
// a schema: the subset of JSON Schema that openapi.json uses.
func validateJSON(doc map[string]any, schema, v any) []string {
	b, err := json.Marshal(v)
	if err != nil {
		return []string{err.Error()}
	}
	var val any
	_ = json.Unmarshal(b, &val)
	var errs []string
	check(doc, schema, val, "$", &errs)
	return errs
}

func check(doc map[string]any, schema, v any, at string, errs *[]string) {
	s, _ := resolveRef(doc, schema).(map[string]any)
	if s == nil {
		return
	}
	fail := func(format string, args ...any) { *errs = append(*errs, at+": "+fmt.Sprintf(format, args...)) }
	if alts := asSlice(s["oneOf"]); alts != nil {
		n := 0
		for _, a := range alts {
			var sub []string
			check(doc, a, v, at, &sub)
			if len(sub) == 0 {
				n++
			}
		}
		if n != 1 {
			fail("matches %d of the oneOf schemas", n)
		}
		return
	}
	if c, ok := s["const"]; ok && c != v {
		fail("want %v", c)
	}
	if enum := asSlice(s["enum"]); enum != nil && !slices.Contains(enum, v) {
		fail("%v is not one of %v", v, enum)
	}
	switch s["type"] {
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("want an object, got %T", v)
			return
		}
		for _, r := range asSlice(s["required"]) {
			if _, ok := m[r.(string)]; !ok {
				fail("required field %q is missing", r)
			}
		}
		props, _ := s["properties"].(map[string]any)
		names, _ := s["propertyNames"].(map[string]any)
		for k, x := range m {
			if names != nil {
				check(doc, names, k, at+"."+k+"(name)", errs)
			}
			if ps, ok := props[k]; ok {
				check(doc, ps, x, at+"."+k, errs)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					fail("unknown field %q", k)
				}
			case map[string]any:
				check(doc, ap, x, at+"."+k, errs)
			}
		}
	case "array":
		a, ok := v.([]any)
		if !ok {
			fail("want an array, got %T", v)
			return
		}
		if min, ok := s["minItems"].(float64); ok && float64(len(a)) < min {
			fail("fewer than %v items", min)
		}
		for i, x := range a {
			check(doc, s["items"], x, fmt.Sprintf("%s[%d]", at, i), errs)
		}
	case "string":
		str, ok := v.(string)
		if !ok {
			fail("want a string, got %T", v)
			return
		}
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
				fail("not a date-time: %q", str)
			}
		}
		if p, ok := s["pattern"].(string); ok && !regexp.MustCompile(p).MatchString(str) {
			fail("%q does not match %s", str, p)
		}
	case "integer", "number":
		f, ok := v.(float64)
		if !ok || s["type"] == "integer" && f != math.Trunc(f) {
			fail("want %s, got %v", s["type"], v)
			return
		}
		if lo, ok := s["minimum"].(float64); ok && f < lo {
			fail("%v is below %v", f, lo)
		}
		if hi, ok := s["maximum"].(float64); ok && f > hi {
			fail("%v is above %v", f, hi)
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			fail("want a boolean, got %T", v)
		}
	}
}
