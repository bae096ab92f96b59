// Package puppet is the Puppet type system and expression language that
// task/ and plan/ share: the subset of Puppet that Bolt's task metadata
// and YAML plans use, with Bolt's semantics. It performs no I/O.
//
// # Types
//
// ParseType parses a type expression such as
// Optional[Array[String[1]]]; a Type checks a value as decoded from JSON
// (a mismatch is a *TypeError that reads like Puppet's) and prints itself
// in Puppet's canonical spelling. Supported: Any, Data, RichData, Scalar,
// ScalarData, Undef, Numeric, Boolean, Collection, TargetSpec (and
// Boltlib::TargetSpec), String[min, max], Integer[min, max], Float[min,
// max], Enum[...], Pattern[/re/, ...] (Ruby regexps translated to RE2),
// Optional, NotUndef, Sensitive, Variant, Array[T, min, max], Hash[K, V,
// min, max], Struct[{key => T, Optional[key] => T}], Tuple[A, ..., min,
// max], and the common puppetlabs-stdlib aliases (Stdlib::Port,
// Stdlib::Absolutepath, ...). A misspelt type name gets a "did you mean"
// hint (see Closest).
//
// # Expressions
//
// ParseExpression parses code (statements separated by newlines or ;, the
// last one's value wins) and ParseInterpolation a string with $var and
// ${expr}; in ${...} a leading bare name is a variable ("${version}").
// Expr.CheckVars finds undefined variables before anything runs, and
// Expr.Eval evaluates in a Scope. The subset:
//
//   - literals: 'single' and "double ${interpolated}" strings, integers,
//     floats, true, false, undef, arrays [a, b], hashes {k => v},
//     regular expressions /re/ after =~ and !~;
//   - variables $x (bound in the Scope, lambda parameters, local
//     assignments $x = expr);
//   - indexing $a[0], $a[-1], $a[1, 2] (start, count), $h['k'],
//     $result['k'] (= value['k']), $resultset[0];
//   - operators, loosest first: or; and; == != =~ !~ < > <= >= in; then
//     plus and minus; * / %; unary ! not -. Strings compare
//     case-insensitively as in Puppet, and only undef and false are false;
//   - if/elsif/else and unless/else expressions with { } blocks;
//   - method calls, with optional (args) and optional lambda |$x| { } or
//     |$k, $v| { }: map, filter, each, reduce, any, all, count, join,
//     length, size, keys, values, empty, upcase, downcase, strip, split,
//     first, last, sort, unique, flatten, include, find, filter_set,
//     to_data;
//   - ResultSet members ok, ok_set, error_set, targets, names; Result
//     members ok, value, target, error, message, status, action; Target
//     members name, uri, host, vars, facts; Error members msg, kind,
//     details, issue_code;
//   - the function sprintf, every method in function form (length($x),
//     join($a, ','), map($a) |$x| { }), and the host's functions: the
//     names given to ParseExpression, which a Host performs (a plan's
//     get_targets or fail_plan).
//
// Anything else (case, type references such as String, resource
// expressions, unknown functions or methods, heredocs, ->) is a
// *SyntaxError naming the offset and the construct. Hashes iterate in key
// order. Values are nil, bool, int64, float64, string, []any,
// map[string]any, *ResultSet, *Result, *muster.Target and *muster.Error
// (Normalize converts decoded YAML and JSON); an evaluation error is a
// muster/evaluation-error naming file and line.
//
// # Data helpers
//
// DeepCopy, CopyWith and CompactJSON serve every package that handles
// nested data decoded from JSON or YAML.
package puppet
