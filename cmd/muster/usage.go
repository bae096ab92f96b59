package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// unknownSubcommand finds a command line that names a subcommand muster
// does not have ("muster command rn uptime -t web"), before cobra parses
// flags that belong to the subcommand and blames them instead.
func unknownSubcommand(root *cobra.Command, args []string) error {
	root.InitDefaultHelpCmd()
	c, rest, err := root.Find(args)
	if err != nil {
		return usageError{err}
	}
	if !c.HasSubCommands() {
		return nil
	}
	c.InheritedFlags() // merges the persistent flags into c.Flags()
	fs := c.Flags()
	for i := 0; i < len(rest); i++ {
		arg := rest[i]
		if arg == "--" {
			return nil
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if c.SuggestionsMinimumDistance <= 0 {
				c.SuggestionsMinimumDistance = 2
			}
			msg := fmt.Sprintf("unknown command %q for %q", arg, c.CommandPath())
			if sug := c.SuggestionsFor(arg); len(sug) > 0 {
				msg += fmt.Sprintf("; did you mean %q?", sug[0])
			}
			return usagef("%s (subcommands: %s)", msg, subNames(c))
		}
		if takesValue(fs, arg) || anySubTakesValue(c, arg) {
			i++ // the flag's value is not a subcommand
		}
	}
	return nil
}

// anySubTakesValue reports whether a subcommand of c has a flag arg that
// takes a value: "muster command -t web rn" names the flag of "run".
func anySubTakesValue(c *cobra.Command, arg string) bool {
	for _, sub := range c.Commands() {
		if takesValue(sub.Flags(), arg) {
			return true
		}
	}
	return false
}

// takesValue reports whether arg is a flag of fs that consumes the next
// argument as its value ("-t web", not "-t=web" or "--verbose").
func takesValue(fs *pflag.FlagSet, arg string) bool {
	var f *pflag.Flag
	switch {
	case strings.HasPrefix(arg, "--"):
		if strings.Contains(arg, "=") {
			return false
		}
		f = fs.Lookup(arg[2:])
	case len(arg) == 2:
		f = fs.ShorthandLookup(arg[1:])
	}
	return f != nil && f.NoOptDefVal == ""
}
