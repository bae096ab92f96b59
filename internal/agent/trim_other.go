//go:build !linux

package agent

// trimResident does nothing where the agent cannot release its
// executable's pages.
func trimResident() {}
