package task

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMetadata(t *testing.T) {
	data := []byte(`{
  "description": "Install a package",
  "input_method": "stdin",
  "supports_noop": true,
  "private": false,
  "remote": true,
  "puppet_task_version": 1,
  "files": ["mymod/files/x"],
  "extensions": {"discovery": {"friendlyname": "Install"}},
  "parameters": {
    "name": {"type": "String[1]", "description": "Package"},
    "version": {"type": "Optional[String]", "default": null},
    "password": {"type": "String", "sensitive": true},
    "key": {"type": "Sensitive[String]"},
    "retries": {"default": 3, "typo": 1}
  },
  "implementations": [
    {"name": "x.sh", "requirements": ["shell"], "input_method": "environment", "files": ["a/lib/b"], "remote": false, "extra": 1}
  ],
  "unknown_top": 1
}`)
	md, warns, err := ParseMetadata("mod/tasks/x.json", data)
	if err != nil {
		t.Fatal(err)
	}
	wantWarns := []string{
		`mod/tasks/x.json:15:39: parameter "retries": unknown field "typo" ignored`,
		`mod/tasks/x.json:18:128: implementations[0]: unknown field "extra" ignored`,
		`mod/tasks/x.json:20:18: unknown field "unknown_top" ignored`,
	}
	if diff := cmp.Diff(wantWarns, warns); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
	if md.Description != "Install a package" || md.InputMethod != "stdin" || !md.SupportsNoop || md.Private || !md.Remote ||
		md.PuppetTaskVersion != 1 || len(md.Files) != 1 || md.Extensions["discovery"] == nil {
		t.Errorf("bad metadata %+v", md)
	}
	if diff := cmp.Diff([]string{"name", "version", "password", "key", "retries"}, md.ParamOrder); diff != "" {
		t.Errorf("order: %s", diff)
	}
	p := md.Parameters
	if !p["name"].Required() || p["version"].Required() || !p["version"].HasDefault || p["version"].Default != nil {
		t.Errorf("required/default wrong: %+v %+v", p["name"], p["version"])
	}
	if !p["password"].Sensitive || !p["key"].Sensitive || p["name"].Sensitive {
		t.Error("sensitive flags wrong")
	}
	if p["retries"].Type.String() != "Any" || p["retries"].Required() || p["name"].Type.String() != "String[1]" {
		t.Error("types wrong")
	}
	im := md.Implementations[0]
	if im.Name != "x.sh" || im.InputMethod != "environment" || im.Requirements[0] != "shell" || im.Files[0] != "a/lib/b" {
		t.Errorf("implementation %+v", im)
	}
}

func TestParseMetadataErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `t.json: invalid JSON: the file is empty`},
		{`{"description": }`, `t.json:1:17: invalid JSON: invalid character '}' looking for beginning of value`},
		{"{\n  \"a\": 1,\n}", `t.json:3:1: invalid JSON: invalid character '}' looking for beginning of object key string`},
		{`{} {}`, `t.json:1:4: invalid JSON: invalid data after the top-level value`},
		{`[]`, `t.json:1:1: task metadata must be a JSON object, got an array`},
		{`{"description": 1}`, `t.json:1:17: field "description": expected a string, got a number`},
		{`{"private": "yes"}`, `t.json:1:13: field "private": expected true or false, got a string`},
		{`{"input_method": "env"}`, `t.json:1:18: field "input_method": must be environment, stdin, both or powershell, got "env"`},
		{`{"files": ["a", 2]}`, `t.json:1:17: field "files": item 1: expected a string, got a number`},
		{`{"puppet_task_version": 2}`, `t.json:1:25: field "puppet_task_version": only version 1 is supported, got 2`},
		{`{"parameters": []}`, `t.json:1:16: field "parameters": expected an object, got an array`},
		{`{"parameters": {"Port": {}}}`, `t.json:1:25: parameter "Port": invalid name: parameter names must match ^[a-z][a-z0-9_]*$`},
		{`{"parameters": {"p": 1}}`, `t.json:1:22: parameter "p": expected an object, got a number`},
		{"{\"parameters\": {\n  \"port\": {\"type\": \"Integr\"}}}", `t.json:2:20: parameter "port": unknown type "Integr" at offset 0 (did you mean "Integer"?)`},
		{`{"parameters": {"p": {"type": 5}}}`, `t.json:1:31: parameter "p" field "type": expected a string, got a number`},
		{`{"implementations": [{"requirements": []}]}`, `t.json:1:22: implementations[0]: field "name" must be a file name in the tasks directory`},
		{`{"implementations": [{"name": "../x.sh"}]}`, `t.json:1:22: implementations[0]: field "name" must be a file name in the tasks directory`},
		{`{"implementations": {}}`, `t.json:1:21: field "implementations": expected an array, got an object`},
		{`{"extensions": 1}`, `t.json:1:16: field "extensions": expected an object, got a number`},
	} {
		_, _, err := ParseMetadata("t.json", []byte(tc.in))
		if err == nil || err.Error() != tc.want {
			t.Errorf("ParseMetadata(%s) = %v\n want %s", tc.in, err, tc.want)
		}
	}
}

func TestParseMetadataMinimal(t *testing.T) {
	md, warns, err := ParseMetadata("t.json", []byte(` {"parameters": null, "identifiers": {}} `))
	if err != nil || len(warns) != 0 || md.Parameters != nil {
		t.Fatalf("%v %v %+v", err, warns, md)
	}
}
