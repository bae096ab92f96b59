// Package plan is muster's plan engine: discovery of plans on the module
// path, Bolt-compatible YAML plans with a documented subset of the Puppet
// expression language, Starlark plans, and their execution through a
// Runner. It performs no I/O on targets itself (the Runner does) and
// imports no transport.
//
// # Discovery
//
// Plans live in <mod>/plans/<path>/<name>.yaml or .star and are named
// mod::path::name; plans/init.* is named mod. Find builds an Index;
// Index.Get suggests a near name when one is misspelt.
//
// # YAML plans
//
// Top-level keys: description, parameters (each with only type, default
// and description; types are Puppet types, see package puppet), private,
// steps (required), return and version. Step kinds: command, task, script,
// upload and download (both with destination), plan, message, verbose and
// eval, with name, description, targets, parameters, arguments, env_vars,
// run_as, catch_errors and noop as Bolt allows them per kind, plus
// muster's rolling options batch (N or "N%"), canary (N), max_failures (N
// or "N%") and pause ("30s"); the same four keys at the top level of the
// plan are the default of every step. A resources step (Bolt's resource
// declarations) runs through the Runner's Applier. Everything,
// including every expression and the variables it uses, is checked at load
// time; a *LoadError names the file and line (and, as muster's
// invalid-input error, carries them as details file and line). A
// parameter with neither type nor default (nor a null default) is
// required, as in Bolt.
//
// # Values and expressions
//
//   - A plain scalar starting with $ is an expression: $count * 2.
//   - A double-quoted scalar interpolates $var and ${expr}; in ${...} a
//     leading bare name is a variable ("${version}").
//   - A | block scalar is code: statements (including $x = expr
//     assignments) separated by newlines or ;, the last one's value wins.
//   - Single-quoted, folded and other scalars are literal YAML values.
//
// The expression subset is puppet's (see package puppet), with these plan
// functions: get_targets, get_target, fail_plan(msg, [kind], [details])
// or fail_plan($error), out::message, out::verbose, run_command(cmd,
// targets, [options]), run_plan(name, [params]) and
// wait_until_available(targets, [options]). Anything outside it is a load
// error naming file, line and the construct.
//
// # Starlark plans
//
// A .star plan defines main. Its parameters are declared in a global
// PARAMS dict, name to {"type": "String", "default": ..., "description":
// ...} (or just the type string); main takes them by name (def
// main(targets, version="1.0")) or as **params. Without PARAMS, main's
// parameters are the plan's, typed NotUndef (required) or Any (with a
// default). DESCRIPTION (or main's docstring), PRIVATE and BATCH (a dict
// of batch, canary, max_failures and pause, the default of every action)
// are optional globals. Plan actions may only be called from
// main, not at the top level, which runs at load time.
//
// Builtins: run_command(cmd, targets), run_script(script, targets,
// arguments=[]), run_task(task, targets, params={}), upload_file(src,
// dest, targets), download_file(src, dest, targets), each with keywords
// catch_errors, run_as, env, noop, description, batch, canary,
// max_failures and pause; wait_until_available(targets, timeout=120);
// run_plan(name, [params], targets=..., catch_errors=..., **params);
// get_targets(*specs); sleep(seconds); out.message(msg); out.verbose(msg); fail_plan(msg,
// kind=, details=) or fail_plan(error); catch_errors(fn), which returns
// fn()'s value or the Error it raised; parallelize(targets, fn), which
// calls fn(target) concurrently (bounded by Options.Concurrency) and
// returns the list of results. ResultSets are indexable and iterable and
// have ok, ok_set, error_set, names, targets and to_data; a Result has
// target, value, ok, status, error, message, action and r["key"].
// Errors carry the file and line: evaluation errors in their message,
// plan errors in details.location.
//
// # Messages
//
// message steps, out::message and out.message always reach the Runner's
// Message; verbose steps, out::verbose and out.verbose only when
// Options.Verbose is set (the CLI's --verbose), as in Bolt.
//
// # Failure
//
// A step that cannot start (its script, file or task is missing, its
// parameters do not fit) fails before StepStarted when the Runner is a
// Checker; in a YAML plan such an error, and an evaluation error of a
// step, names the plan file and the step's line, in the message and as
// details file and line.
//
// An action fails when any target fails; without catch_errors the plan
// stops with muster/run-failure ("run_command 'x' failed on 2 targets",
// details action, object and result_set). fail_plan raises
// muster/plan-failure or the given kind.
package plan
