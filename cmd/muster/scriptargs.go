package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// scriptArgsHelp states the one rule for a script's arguments, shared by
// 'script run' and 'job submit script'.
const scriptArgsHelp = `Arguments after SCRIPT go to the script, in order, except muster's own
flags (-t, --run-as, --format, ...), which muster takes wherever they
appear. Everything after '--' goes to the script untouched, so a script
flag that muster also has (-t, --verbose) goes after '--'. ARGS are passed
literally (shell-quoted, never interpolated).`

// withScriptArgs makes c split its command line by that rule: cobra's own
// flag parsing is off, muster's flags are picked out here, and run gets
// the script path and the script's arguments.
func withScriptArgs(c *cobra.Command, run func(c *cobra.Command, script string, args []string) error) {
	c.DisableFlagParsing = true
	c.Args = cobra.ArbitraryArgs
	c.RunE = func(c *cobra.Command, all []string) error {
		own, pos := splitScriptArgs(c, all)
		if err := c.Flags().Parse(own); err != nil { // c.ParseFlags is a no-op without flag parsing
			return c.FlagErrorFunc()(c, err)
		}
		if help, _ := c.Flags().GetBool("help"); help {
			return c.Help()
		}
		if len(pos) == 0 {
			return usagef("'%s' needs a SCRIPT to run (see '%s --help')", c.CommandPath(), c.CommandPath())
		}
		return run(c, pos[0], pos[1:])
	}
}

// splitScriptArgs separates muster's flags (with their values) from the
// script path and its arguments.
func splitScriptArgs(c *cobra.Command, args []string) (own, pos []string) {
	c.InitDefaultHelpFlag()
	c.InheritedFlags() // merges the persistent flags into c.Flags()
	fs := c.Flags()
	for i := 0; i < len(args); i++ {
		arg := args[i]
		switch {
		case arg == "--":
			return own, append(pos, args[i+1:]...)
		case strings.HasPrefix(arg, "--") && fs.Lookup(strings.SplitN(arg[2:], "=", 2)[0]) != nil,
			len(arg) >= 2 && arg[0] == '-' && arg[1] != '-' && fs.ShorthandLookup(arg[1:2]) != nil:
			own = append(own, arg)
			if takesValue(fs, arg) && i+1 < len(args) {
				i++
				own = append(own, args[i])
			}
		default:
			pos = append(pos, arg)
		}
	}
	return own, pos
}
