package checkin

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The protocol's OpenAPI document (openapi.json) stays true: every
// endpoint is in it, and every payload's schema has exactly the fields of
// its Go type, with the same required ones (those without omitempty).
func TestOpenAPIMatchesProtocol(t *testing.T) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]struct {
				Properties map[string]any `json:"properties"`
				Required   []string       `json:"required"`
			} `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	want := []string{PathCert, PathEnroll, PathFacts, PathCheckIn, PathRenew, PathReport}
	sort.Strings(want)
	if !slices.Equal(paths, want) {
		t.Errorf("documented paths %v, want %v", paths, want)
	}
	types := []any{EnrollRequest{}, CertRequest{}, CertResponse{}, CheckInRequest{}, CheckInResponse{}, Run{}, Report{},
		ReportResponse{}, FactsUpload{}, FactsResponse{}, ErrorResponse{}}
	if len(types) != len(doc.Components.Schemas) {
		t.Errorf("%d schemas documented, %d payload types", len(doc.Components.Schemas), len(types))
	}
	for _, v := range types {
		rt := reflect.TypeOf(v)
		sc, ok := doc.Components.Schemas[rt.Name()]
		if !ok {
			t.Errorf("%s is not documented", rt.Name())
			continue
		}
		var fields, required []string
		for i := range rt.NumField() {
			tag := rt.Field(i).Tag.Get("json")
			name, opts, _ := strings.Cut(tag, ",")
			fields = append(fields, name)
			if !strings.Contains(opts, "omit") {
				required = append(required, name)
			}
		}
		var documented []string
		for p := range sc.Properties {
			documented = append(documented, p)
		}
		sort.Strings(fields)
		sort.Strings(documented)
		sort.Strings(required)
		req := slices.Clone(sc.Required)
		sort.Strings(req)
		if !slices.Equal(fields, documented) {
			t.Errorf("%s: fields %v, documented %v", rt.Name(), fields, documented)
		}
		if !slices.Equal(required, req) {
			t.Errorf("%s: required %v, documented %v", rt.Name(), required, req)
		}
	}
}
