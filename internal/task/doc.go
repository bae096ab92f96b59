// Package task is muster's pure task engine: task metadata, discovery on
// the module path, parameter parsing and validation, input encoding and
// output interpretation, all with Bolt's semantics. Parameter types are
// Puppet types from internal/puppet. It does no I/O beyond reading a
// module path.
package task
