package task

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/muster-run/muster/internal/puppet"
)

// Input methods of a task.
const (
	InputEnvironment = "environment"
	InputStdin       = "stdin"
	InputBoth        = "both"
	InputPowerShell  = "powershell"
)

// paramName is the rule for parameter names and task name segments.
var paramName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Metadata is a task's <name>.json, as described in bolt-compat 3.2.
type Metadata struct {
	Description string
	// Parameters is nil when the file has no "parameters" key: the task
	// then accepts any parameters unchecked.
	Parameters map[string]*Param
	// ParamOrder lists the parameter names in file order.
	ParamOrder []string
	// InputMethod is as written, "" when unset; see Task.Select for the
	// resolved method.
	InputMethod       string
	Implementations   []Implementation
	Files             []string
	Private           bool
	SupportsNoop      bool
	Remote            bool
	PuppetTaskVersion int
	Extensions        map[string]any
	// Raw is the whole document as decoded, for `task show --format json`.
	Raw map[string]any
}

// Param is one entry of "parameters".
type Param struct {
	// TypeString is the type as written ("" when absent, which means Any).
	TypeString  string
	Type        puppet.Type
	Description string
	// Default is the "default" value; HasDefault says whether the key was
	// present (a null default is still a default).
	Default    any
	HasDefault bool
	// Sensitive is set by "sensitive": true or by a Sensitive[...] type.
	Sensitive bool
}

// Required reports whether the parameter must be given: its type does not
// accept undef and it has no default.
func (p *Param) Required() bool { return !p.HasDefault && !p.Type.Optional() }

// Implementation is one entry of "implementations", or the task's single
// executable when there are none.
type Implementation struct {
	// Name is the executable's file name in the module's tasks directory.
	Name         string
	Requirements []string
	// InputMethod is as written in metadata, "" when unset; Select fills
	// in the resolved method.
	InputMethod string
	Files       []string
	Remote      bool
	// Path is the executable's local path, set by Select.
	Path string
}

// MetadataError is an invalid metadata file.
type MetadataError struct {
	File      string
	Line, Col int // 0 when unknown
	Msg       string
}

// Error renders "file:line:col: message".
func (e *MetadataError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
	}
	return e.File + ": " + e.Msg
}

// metaDoc holds the decoded document and the offset of each value.
type metaDoc struct {
	file     string
	data     []byte
	pos      map[string]int // JSON path ("/parameters/port/type") to offset
	warnings []string
}

func (d *metaDoc) lineCol(path string) (int, int) {
	off, ok := d.pos[path]
	if !ok {
		return 0, 0
	}
	return lineCol(d.data, off)
}

// lineCol converts a byte offset into a 1-based line and column.
func lineCol(data []byte, off int) (int, int) {
	off = min(max(off, 0), len(data))
	line := 1 + bytes.Count(data[:off], []byte("\n"))
	return line, off - bytes.LastIndexByte(data[:off], '\n')
}

func (d *metaDoc) errf(path, format string, args ...any) error {
	l, c := d.lineCol(path)
	return &MetadataError{File: d.file, Line: l, Col: c, Msg: fmt.Sprintf(format, args...)}
}

func (d *metaDoc) warnf(path, format string, args ...any) {
	d.warnings = append(d.warnings, d.errf(path, format, args...).Error())
}

// skipSep returns the offset of the next value after off, skipping blanks,
// ':' and ','.
func skipSep(data []byte, off int) int {
	for off < len(data) && strings.IndexByte(" \t\r\n:,", data[off]) >= 0 {
		off++
	}
	return off
}

// walk consumes one JSON value from dec, recording the offsets of values up
// to a few levels deep.
func (d *metaDoc) walk(dec *json.Decoder, path string, depth int) error {
	start := skipSep(d.data, int(dec.InputOffset()))
	if depth <= 4 {
		d.pos[path] = start
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	for i := 0; dec.More(); i++ {
		elem := path + "/" + strconv.Itoa(i)
		if delim == '{' {
			k, err := dec.Token()
			if err != nil {
				return err
			}
			elem = path + "/" + k.(string)
		}
		if err := d.walk(dec, elem, depth+1); err != nil {
			return err
		}
	}
	_, err = dec.Token()
	return err
}

// ParseMetadata parses a task metadata file. Unknown fields give warnings;
// malformed JSON, wrongly typed fields, bad parameter names and unparseable
// parameter types are errors naming the file, position and field.
func ParseMetadata(filename string, data []byte) (*Metadata, []string, error) {
	d := &metaDoc{file: filename, data: data, pos: map[string]int{}}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	err := d.walk(dec, "", 0)
	off := int(dec.InputOffset())
	if err == nil {
		off = skipSep(data, off)
		if _, e := dec.Token(); e != io.EOF {
			err = fmt.Errorf("invalid data after the top-level value")
		}
	}
	if err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			off = int(se.Offset)
		}
		l, c := lineCol(data, off)
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, nil, &MetadataError{File: filename, Msg: "invalid JSON: the file is empty"}
		}
		return nil, nil, &MetadataError{File: filename, Line: l, Col: c, Msg: "invalid JSON: " + strings.TrimPrefix(err.Error(), "json: ")}
	}
	var doc any
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, &MetadataError{File: filename, Msg: "invalid JSON: " + err.Error()}
	}
	top, ok := doc.(map[string]any)
	if !ok {
		return nil, nil, d.errf("", "task metadata must be a JSON object, got %s", jsonKind(doc))
	}
	md := &Metadata{Raw: top, PuppetTaskVersion: 1}
	for _, k := range d.sortedByPos("", top) {
		v, path := top[k], "/"+k
		if err := d.field(md, k, v, path); err != nil {
			return nil, nil, err
		}
	}
	return md, d.warnings, nil
}

// sortedByPos returns m's keys in file order.
func (d *metaDoc) sortedByPos(path string, m map[string]any) []string {
	keys := slices.Sorted(maps.Keys(m))
	sort.SliceStable(keys, func(i, j int) bool { return d.pos[path+"/"+keys[i]] < d.pos[path+"/"+keys[j]] })
	return keys
}

func (d *metaDoc) field(md *Metadata, k string, v any, path string) (err error) {
	switch k {
	case "description":
		md.Description, err = d.str(v, path, `field "description"`)
	case "parameters":
		return d.params(md, v, path)
	case "input_method":
		md.InputMethod, err = d.inputMethod(v, path, `field "input_method"`)
	case "implementations":
		return d.impls(md, v, path)
	case "files":
		md.Files, err = d.strList(v, path, `field "files"`)
	case "private":
		md.Private, err = d.boolean(v, path, `field "private"`)
	case "supports_noop":
		md.SupportsNoop, err = d.boolean(v, path, `field "supports_noop"`)
	case "remote":
		md.Remote, err = d.boolean(v, path, `field "remote"`)
	case "puppet_task_version":
		if n, ok := puppet.AsInt(v); !ok || n != 1 {
			return d.errf(path, `field "puppet_task_version": only version 1 is supported, got %s`, puppet.CompactJSON(v))
		}
	case "extensions":
		if v == nil {
			return nil
		}
		m, ok := v.(map[string]any)
		if !ok {
			return d.errf(path, `field "extensions": expected an object, got %s`, jsonKind(v))
		}
		md.Extensions = m
	case "identifiers":
		// Part of the published metadata schema; muster has no use for it.
	default:
		d.warnf(path, "unknown field %q ignored", k)
	}
	return err
}

func (d *metaDoc) str(v any, path, what string) (string, error) {
	if v == nil {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", d.errf(path, "%s: expected a string, got %s", what, jsonKind(v))
	}
	return s, nil
}

func (d *metaDoc) boolean(v any, path, what string) (bool, error) {
	if v == nil {
		return false, nil
	}
	b, ok := v.(bool)
	if !ok {
		return false, d.errf(path, "%s: expected true or false, got %s", what, jsonKind(v))
	}
	return b, nil
}

func (d *metaDoc) strList(v any, path, what string) ([]string, error) {
	if v == nil {
		return nil, nil
	}
	a, ok := v.([]any)
	if !ok {
		return nil, d.errf(path, "%s: expected an array of strings, got %s", what, jsonKind(v))
	}
	out := make([]string, len(a))
	for i, e := range a {
		s, ok := e.(string)
		if !ok {
			return nil, d.errf(fmt.Sprintf("%s/%d", path, i), "%s: item %d: expected a string, got %s", what, i, jsonKind(e))
		}
		out[i] = s
	}
	return out, nil
}

func (d *metaDoc) inputMethod(v any, path, what string) (string, error) {
	s, err := d.str(v, path, what)
	if err != nil {
		return "", err
	}
	switch s {
	case "", InputEnvironment, InputStdin, InputBoth, InputPowerShell:
		return s, nil
	}
	return "", d.errf(path, "%s: must be environment, stdin, both or powershell, got %q", what, s)
}

func (d *metaDoc) params(md *Metadata, v any, path string) error {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return d.errf(path, `field "parameters": expected an object, got %s`, jsonKind(v))
	}
	md.Parameters = make(map[string]*Param, len(m))
	for _, name := range d.sortedByPos(path, m) {
		ppath := path + "/" + name
		what := fmt.Sprintf("parameter %q", name)
		if !paramName.MatchString(name) {
			return d.errf(ppath, "%s: invalid name: parameter names must match ^[a-z][a-z0-9_]*$", what)
		}
		spec, ok := m[name].(map[string]any)
		if !ok && m[name] != nil {
			return d.errf(ppath, "%s: expected an object, got %s", what, jsonKind(m[name]))
		}
		p := &Param{}
		var err error
		for _, k := range d.sortedByPos(ppath, spec) {
			kpath := ppath + "/" + k
			switch k {
			case "type":
				p.TypeString, err = d.str(spec[k], kpath, what+` field "type"`)
			case "description":
				p.Description, err = d.str(spec[k], kpath, what+` field "description"`)
			case "sensitive":
				p.Sensitive, err = d.boolean(spec[k], kpath, what+` field "sensitive"`)
			case "default":
				p.Default, p.HasDefault = spec[k], true
			default:
				d.warnf(kpath, "%s: unknown field %q ignored", what, k)
			}
			if err != nil {
				return err
			}
		}
		if p.TypeString == "" {
			p.Type = puppet.AnyType()
		} else if p.Type, err = puppet.ParseType(p.TypeString); err != nil {
			return d.errf(ppath+"/type", "%s: %v", what, err)
		}
		if puppet.IsSensitive(p.Type) {
			p.Sensitive = true
		}
		md.Parameters[name] = p
		md.ParamOrder = append(md.ParamOrder, name)
	}
	return nil
}

func (d *metaDoc) impls(md *Metadata, v any, path string) error {
	if v == nil {
		return nil
	}
	a, ok := v.([]any)
	if !ok {
		return d.errf(path, `field "implementations": expected an array, got %s`, jsonKind(v))
	}
	for i, e := range a {
		ipath := fmt.Sprintf("%s/%d", path, i)
		what := fmt.Sprintf("implementations[%d]", i)
		m, ok := e.(map[string]any)
		if !ok {
			return d.errf(ipath, "%s: expected an object, got %s", what, jsonKind(e))
		}
		var im Implementation
		var err error
		for _, k := range d.sortedByPos(ipath, m) {
			kpath := ipath + "/" + k
			switch k {
			case "name":
				im.Name, err = d.str(m[k], kpath, what+` field "name"`)
			case "requirements":
				im.Requirements, err = d.strList(m[k], kpath, what+` field "requirements"`)
			case "input_method":
				im.InputMethod, err = d.inputMethod(m[k], kpath, what+` field "input_method"`)
			case "files":
				im.Files, err = d.strList(m[k], kpath, what+` field "files"`)
			case "remote":
				im.Remote, err = d.boolean(m[k], kpath, what+` field "remote"`)
			default:
				d.warnf(kpath, "%s: unknown field %q ignored", what, k)
			}
			if err != nil {
				return err
			}
		}
		if im.Name == "" || strings.ContainsAny(im.Name, `/\`) || im.Name == "." || im.Name == ".." {
			return d.errf(ipath, `%s: field "name" must be a file name in the tasks directory`, what)
		}
		md.Implementations = append(md.Implementations, im)
	}
	return nil
}

// jsonKind names the JSON kind of a decoded value, for error messages.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case json.Number, float64:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}
