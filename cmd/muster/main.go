// Command muster runs commands, scripts and file transfers on many hosts at
// once over persistent SSH connections. This package only wires the engine
// to its adapters and to the command line.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
