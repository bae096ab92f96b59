package task

import (
	"strings"
	"testing"
)

// FuzzParseMetadata checks that ParseMetadata never panics, that errors
// name the file, and that parsed parameters are usable.
func FuzzParseMetadata(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"description": "x", "parameters": {"a": {"type": "String", "default": "d", "sensitive": true}}}`,
		`{"implementations": [{"name": "a.sh", "requirements": ["shell"], "files": ["m/files/x"]}], "files": []}`,
		`{"input_method": "stdin", "private": true, "supports_noop": true, "extensions": {"x": {}}, "zzz": 1}`,
		`{"parameters": {"p": {"type": "Integr"}}}`, `[`, `{"a":`, "{\n\"parameters\": {\"Bad\": {}}}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		md, warns, err := ParseMetadata("f.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for _, w := range warns {
			if !strings.HasPrefix(w, "f.json") {
				t.Fatalf("warning does not name the file: %q", w)
			}
		}
		if len(md.ParamOrder) != len(md.Parameters) {
			t.Fatalf("order %v vs %d parameters", md.ParamOrder, len(md.Parameters))
		}
		for _, p := range md.Parameters {
			if p.Type == nil {
				t.Fatal("nil type")
			}
		}
		params := map[string]any{}
		for name, p := range md.Parameters {
			if p.HasDefault {
				params[name] = p.Default
			}
		}
		_, _ = md.Validate("m::t", params)
		_ = md.Redact(params)
		_ = EnvVars(params)
	})
}
