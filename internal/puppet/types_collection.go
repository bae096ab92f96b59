package puppet

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
)

// sizeErr checks a collection size against [min, max].
func sizeErr(t Type, v any, n int, min, max int64) error {
	if int64(n) >= min && int64(n) <= max {
		return nil
	}
	var want string
	switch {
	case max == math.MaxInt64:
		want = fmt.Sprintf("at least %d", min)
	case min == max:
		want = fmt.Sprintf("%d", min)
	default:
		want = fmt.Sprintf("between %d and %d", min, max)
	}
	return &TypeError{Expected: t, Value: v, Msg: fmt.Sprintf("expects size to be %s, got %d", want, n)}
}

func sizeSuffix(min, max int64) string {
	switch {
	case min == 0 && max == math.MaxInt64:
		return ""
	case max == math.MaxInt64:
		return fmt.Sprintf(", %d", min)
	}
	return fmt.Sprintf(", %d, %d", min, max)
}

// arrayT is Array[T, min, max].
type arrayT struct {
	elem     Type // nil: any
	min, max int64
}

func (t *arrayT) Check(v any) error {
	a, ok := v.([]any)
	if !ok {
		return mismatch(t, v)
	}
	if err := sizeErr(t, v, len(a), t.min, t.max); err != nil {
		return err
	}
	if t.elem != nil {
		for i, e := range a {
			if err := t.elem.Check(e); err != nil {
				return within(err, fmt.Sprintf("index %d", i))
			}
		}
	}
	return nil
}
func (t *arrayT) String() string {
	if t.elem == nil {
		if t.min == 0 && t.max == math.MaxInt64 {
			return "Array"
		}
		return "Array[Any" + sizeSuffix(t.min, t.max) + "]"
	}
	return "Array[" + t.elem.String() + sizeSuffix(t.min, t.max) + "]"
}
func (t *arrayT) Optional() bool    { return false }
func (t *arrayT) WantsString() bool { return false }

// hashT is Hash[K, V, min, max].
type hashT struct {
	key, val Type // nil: any
	min, max int64
}

func (t *hashT) Check(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return mismatch(t, v)
	}
	if err := sizeErr(t, v, len(m), t.min, t.max); err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if t.key != nil {
			if err := t.key.Check(k); err != nil {
				return within(err, fmt.Sprintf("key %q", k))
			}
		}
		if t.val != nil {
			if err := t.val.Check(m[k]); err != nil {
				return within(err, fmt.Sprintf("entry %q", k))
			}
		}
	}
	return nil
}
func (t *hashT) String() string {
	if t.key == nil {
		if t.min == 0 && t.max == math.MaxInt64 {
			return "Hash"
		}
		return "Hash[Any, Any" + sizeSuffix(t.min, t.max) + "]"
	}
	return "Hash[" + t.key.String() + ", " + t.val.String() + sizeSuffix(t.min, t.max) + "]"
}
func (t *hashT) Optional() bool    { return false }
func (t *hashT) WantsString() bool { return false }

// structField is one key of a Struct.
type structField struct {
	name     string
	optional bool // Optional['name']: the key may be missing
	notUndef bool // NotUndef['name']
	t        Type
}

// structT is Struct[{'a' => T, Optional['b'] => U}]. Other keys are rejected.
type structT struct{ fields []structField }

func (t *structT) Check(v any) error {
	m, ok := v.(map[string]any)
	if !ok {
		return mismatch(t, v)
	}
	known := make(map[string]bool, len(t.fields))
	for _, f := range t.fields {
		known[f.name] = true
		x, present := m[f.name]
		if f.notUndef && x == nil {
			return &TypeError{Expected: t, Value: v, Msg: fmt.Sprintf("expects a value for key %q", f.name)}
		}
		if !present || x == nil {
			if f.optional || (!f.notUndef && f.t.Optional()) {
				continue
			}
			if !present {
				return &TypeError{Expected: t, Value: v, Msg: fmt.Sprintf("expects a value for key %q", f.name)}
			}
		}
		if err := f.t.Check(x); err != nil {
			return within(err, fmt.Sprintf("entry %q", f.name))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if !known[k] {
			return &TypeError{Expected: t, Value: v, Msg: fmt.Sprintf("has unrecognized key %q", k)}
		}
	}
	return nil
}
func (t *structT) String() string {
	s := make([]string, len(t.fields))
	for i, f := range t.fields {
		k := quote(f.name)
		if f.optional {
			k = "Optional[" + k + "]"
		} else if f.notUndef {
			k = "NotUndef[" + k + "]"
		}
		s[i] = k + " => " + f.t.String()
	}
	return "Struct[{" + strings.Join(s, ", ") + "}]"
}
func (t *structT) Optional() bool    { return false }
func (t *structT) WantsString() bool { return false }

// tupleT is Tuple[A, B, ..., min, max]. Elements past the listed types
// must match the last type.
type tupleT struct {
	ts       []Type
	min, max int64
}

func (t *tupleT) Check(v any) error {
	a, ok := v.([]any)
	if !ok {
		return mismatch(t, v)
	}
	if err := sizeErr(t, v, len(a), t.min, t.max); err != nil {
		return err
	}
	for i, e := range a {
		if len(t.ts) == 0 {
			break
		}
		et := t.ts[min(i, len(t.ts)-1)]
		if err := et.Check(e); err != nil {
			return within(err, fmt.Sprintf("index %d", i))
		}
	}
	return nil
}
func (t *tupleT) String() string {
	n := int64(len(t.ts))
	if n == 0 && t.min == 0 && t.max == math.MaxInt64 {
		return "Tuple"
	}
	var parts []string
	if n > 0 {
		parts = append(parts, joinTypes(t.ts))
	}
	// A tuple without types and the default bounds, or with types and
	// exactly that many elements, needs no size parameters.
	if n == 0 || t.min != n || t.max != n {
		hi := "default"
		if t.max != math.MaxInt64 {
			hi = fmt.Sprint(t.max)
		}
		parts = append(parts, fmt.Sprint(t.min), hi)
	}
	return "Tuple[" + strings.Join(parts, ", ") + "]"
}
func (t *tupleT) Optional() bool    { return false }
func (t *tupleT) WantsString() bool { return false }

// aliasT is a named alias such as Stdlib::Port, checked as its definition.
type aliasT struct {
	name string
	t    Type
}

func (t *aliasT) Check(v any) error {
	if err := t.t.Check(v); err != nil {
		if te, ok := err.(*TypeError); ok && len(te.Path) == 0 && te.Msg == "" {
			return broken(t, v, te.Reason)
		}
		return mismatch(t, v)
	}
	return nil
}
func (t *aliasT) String() string    { return t.name }
func (t *aliasT) Optional() bool    { return t.t.Optional() }
func (t *aliasT) WantsString() bool { return t.t.WantsString() }

// IsSensitive reports whether t is Sensitive[...], possibly inside Optional.
func IsSensitive(t Type) bool {
	switch x := t.(type) {
	case *wrapT:
		return x.name == "Sensitive" || x.t != nil && IsSensitive(x.t)
	case *aliasT:
		return IsSensitive(x.t)
	}
	return false
}

// Loosen returns t without its constraints (number ranges, string lengths,
// patterns, enumerations, collection sizes), at every depth: the base type
// a value must have before a constraint can be what it breaks.
func Loosen(t Type) Type {
	switch x := t.(type) {
	case *integerT:
		return &integerT{math.MinInt64, math.MaxInt64}
	case *floatT:
		return &floatT{math.Inf(-1), math.Inf(1)}
	case *stringT, *enumT, *patternT:
		return &stringT{0, math.MaxInt64}
	case *wrapT:
		if x.t == nil {
			return x
		}
		return &wrapT{x.name, Loosen(x.t)}
	case *variantT:
		ts := make([]Type, len(x.ts))
		for i, e := range x.ts {
			ts[i] = Loosen(e)
		}
		return &variantT{ts}
	case *arrayT:
		var elem Type
		if x.elem != nil {
			elem = Loosen(x.elem)
		}
		return &arrayT{elem, 0, math.MaxInt64}
	case *hashT:
		if x.key == nil {
			return &hashT{nil, nil, 0, math.MaxInt64}
		}
		return &hashT{Loosen(x.key), Loosen(x.val), 0, math.MaxInt64}
	case *structT:
		fs := make([]structField, len(x.fields))
		for i, f := range x.fields {
			f.t = Loosen(f.t)
			fs[i] = f
		}
		return &structT{fs}
	case *tupleT:
		ts := make([]Type, len(x.ts))
		for i, e := range x.ts {
			ts[i] = Loosen(e)
		}
		return &tupleT{ts, 0, math.MaxInt64}
	case *aliasT:
		return Loosen(x.t)
	}
	return t
}
