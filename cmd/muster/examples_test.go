package main

import (
	"bufio"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// documentedExamples returns every "muster ..." line of the README's code
// blocks and of every command's --help examples, with where it came from.
func documentedExamples(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	f, err := os.Open("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	inCode := false
	for n := 1; sc.Scan(); n++ {
		line, at := strings.TrimSpace(sc.Text()), n
		for strings.HasSuffix(line, "\\") && sc.Scan() { // a continued line
			n++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(sc.Text())
		}
		if strings.HasPrefix(line, "```") {
			inCode = !inCode
			continue
		}
		if inCode && strings.HasPrefix(line, "muster ") {
			out[line] = "README.md:" + strconv.Itoa(at)
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, line := range strings.Split(strings.ReplaceAll(c.Example, "\\\n", " "), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, "muster ") {
				out[line] = "'" + c.CommandPath() + " --help'"
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newApp().rootCommand())
	return out
}

func newApp() *app { return &app{stdin: strings.NewReader(""), stdout: io.Discard, stderr: io.Discard} }

// shellWords splits a documented command line as sh would for these
// examples: single and double quotes, and a "#" comment after a space.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == '#' && !inWord && (i == 0 || line[i-1] == ' '), (r == '|' || r == '>' || r == '<' || r == '&' || r == ';') && !inWord:
			return words // a comment, or the shell's: a pipe, a redirection, a list
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// TestDocumentedExamplesParse takes every example line of the README and
// of --help through muster's own command line handling: the command must
// exist, every flag must be known with a valid value, the arguments must
// satisfy the command, a command that needs targets must get them from
// muster's flags (not pass them on to a script), and a script's
// arguments must be what the example means.
func TestDocumentedExamplesParse(t *testing.T) {
	examples := documentedExamples(t)
	if len(examples) < 40 {
		t.Fatalf("found only %d documented examples; is the README still there?", len(examples))
	}
	for line, where := range examples {
		t.Run(line, func(t *testing.T) {
			a := newApp()
			root := a.rootCommand()
			args := shellWords(line)[1:]
			if err := unknownSubcommand(root, args); err != nil {
				t.Fatalf("%s: %s: %v", where, line, err)
			}
			c, rest, err := root.Find(args)
			if err != nil {
				t.Fatalf("%s: %s: %v", where, line, err)
			}
			c.InheritedFlags()
			var pos []string
			if c.DisableFlagParsing {
				own, p := splitScriptArgs(c, rest)
				if err := c.Flags().Parse(own); err != nil {
					t.Fatalf("%s: %s: %v", where, line, err)
				}
				pos = p
				if len(pos) == 0 || !strings.HasSuffix(pos[0], ".sh") {
					t.Fatalf("%s: %s: script path = %q", where, line, pos)
				}
				for _, sa := range pos[1:] {
					if sa == "-t" && !strings.Contains(line, " -- ") {
						t.Errorf("%s: %s: -t went to the script", where, line)
					}
				}
			} else {
				if err := c.ParseFlags(rest); err != nil {
					t.Fatalf("%s: %s: %v", where, line, err)
				}
				pos = c.Flags().Args()
				if err := c.ValidateArgs(pos); err != nil {
					t.Fatalf("%s: %s: %v", where, line, err)
				}
			}
			if strings.Contains(c.Use, " -t TARGETS") && !strings.Contains(c.Use, "[-t TARGETS]") && len(a.flags.targets) == 0 && a.flags.rerun == "" {
				t.Errorf("%s: %s: no -t reached muster", where, line)
			}
			if a.flags.format != "human" && a.flags.format != "json" {
				t.Errorf("%s: %s: --format %q", where, line, a.flags.format)
			}
		})
	}
}

// TestScriptArguments pins the one rule for a script's arguments.
func TestScriptArguments(t *testing.T) {
	tests := []struct {
		args       []string
		wantScript []string
		wantTarget string
	}{
		{[]string{"./h.sh", "--deep", "-t", "web"}, []string{"./h.sh", "--deep"}, "web"},
		{[]string{"-t", "web", "./h.sh", "--keep", "7"}, []string{"./h.sh", "--keep", "7"}, "web"},
		{[]string{"./h.sh", "--keep", "7", "-t", "all", "--", "-t", "quick", "--verbose"}, []string{"./h.sh", "--keep", "7", "-t", "quick", "--verbose"}, "all"},
		{[]string{"./h.sh", "-tweb", "a", "--targets=db", "b"}, []string{"./h.sh", "a", "b"}, "db"},
		{[]string{"./h.sh", "x", "--run-as", "root", "-t", "web"}, []string{"./h.sh", "x"}, "web"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			a := newApp()
			root := a.rootCommand()
			c, _, err := root.Find([]string{"script", "run"})
			if err != nil {
				t.Fatal(err)
			}
			own, pos := splitScriptArgs(c, tc.args)
			if err := c.Flags().Parse(own); err != nil {
				t.Fatal(err)
			}
			if strings.Join(pos, " ") != strings.Join(tc.wantScript, " ") {
				t.Errorf("script args = %q, want %q", pos, tc.wantScript)
			}
			if got := a.flags.targets; len(got) == 0 || got[len(got)-1] != tc.wantTarget {
				t.Errorf("targets = %q, want %q", got, tc.wantTarget)
			}
		})
	}
}

// TestScriptArgumentsReachTheScript runs a script with the README's
// example arguments on this machine.
func TestScriptArgumentsReachTheScript(t *testing.T) {
	dir := t.TempDir()
	script := dir + "/health.sh"
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"args:$*\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := cli(t, "script", "run", script, "--deep", "-t", "localhost", "--format", "json", "--", "-t", "x")
	if code != 0 {
		t.Fatalf("exit %d: %s %s", code, out, errOut)
	}
	if !strings.Contains(out, `args:--deep -t x`) {
		t.Errorf("the script did not get its arguments: %s", out)
	}
}
