package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/muster-run/muster/internal/boltsecret"
	"github.com/muster-run/muster/internal/inventory"
)

// secretCommand is Bolt's `secret`: pkcs7 key pairs and values for the
// inventory's pkcs7 plugin, interchangeable with Bolt's and hiera-eyaml's.
func (a *app) secretCommand() *cobra.Command {
	var force bool
	var plugin string
	createkeys := &cobra.Command{
		Use:   "createkeys [--force]",
		Short: "Create the project's pkcs7 key pair",
		Long: `Create an RSA key pair for the pkcs7 plugin, as 'bolt secret createkeys'
does: keys/private_key.pkcs7.pem (mode 0600) and keys/public_key.pkcs7.pem
(a self-signed certificate) in the project, or the private-key, public-key
and keysize set under plugins.pkcs7 in the project file. Existing keys are
kept unless --force.`,
		Example: "  muster secret createkeys\n  muster secret createkeys --force",
		Args:    noArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			cfg, err := a.pkcs7Config(plugin)
			if err != nil {
				return err
			}
			if err := boltsecret.CreateKeys(cfg, force); err != nil {
				return inputError{err}
			}
			fmt.Fprintf(a.stdout, "Wrote the private key to %s and the public key to %s\n", cfg.PrivateKey, cfg.PublicKey)
			return nil
		},
	}
	createkeys.Flags().BoolVar(&force, "force", false, "overwrite an existing key pair")
	encrypt := &cobra.Command{
		Use:   "encrypt [PLAINTEXT]",
		Short: "Encrypt a value for the pkcs7 plugin",
		Long: `Encrypt a value with the project's public key and print it as
ENC[PKCS7,...], ready for {_plugin: pkcs7, encrypted_value: ...} in an
inventory. Without PLAINTEXT the value is read from standard input (asked
for without echo on a terminal), which keeps it out of shell history.`,
		Example: "  muster secret encrypt 'hunter2'\n  printf %s \"$PASS\" | muster secret encrypt",
		Args:    maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := a.pkcs7Config(plugin)
			if err != nil {
				return err
			}
			keys, err := boltsecret.LoadKeys(cfg, false)
			if err != nil {
				return inputError{fmt.Errorf("%v (create a key pair with 'muster secret createkeys')", err)}
			}
			var plain []byte
			if len(args) == 1 {
				plain = []byte(args[0])
			} else if plain, err = a.readSecret("Plaintext to encrypt"); err != nil {
				return err
			}
			enc, err := boltsecret.Encrypt(keys.Cert, plain)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, enc)
			return err
		},
	}
	decrypt := &cobra.Command{
		Use:   "decrypt [CIPHERTEXT]",
		Short: "Decrypt an ENC[PKCS7,...] value",
		Long: `Decrypt a value made by 'muster secret encrypt', 'bolt secret encrypt' or
hiera-eyaml with the project's key pair, and print it. Without CIPHERTEXT
it is read from standard input.`,
		Example: "  muster secret decrypt 'ENC[PKCS7,MIIBeQYJ...]'",
		Args:    maxArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := a.pkcs7Config(plugin)
			if err != nil {
				return err
			}
			keys, err := boltsecret.LoadKeys(cfg, true)
			if err != nil {
				return inputError{err}
			}
			var value string
			if len(args) == 1 {
				value = args[0]
			} else {
				b, err := io.ReadAll(io.LimitReader(a.stdin, 16<<20))
				if err != nil {
					return err
				}
				value = string(b)
			}
			plain, err := boltsecret.Decrypt(keys.Cert, keys.Key, value)
			if err != nil {
				return inputError{err}
			}
			_, err = fmt.Fprintln(a.stdout, string(plain))
			return err
		},
	}
	cmd := group("secret", "Create keys for, encrypt and decrypt pkcs7 secrets", createkeys, encrypt, decrypt)
	cmd.PersistentFlags().StringVar(&plugin, "plugin", "pkcs7", "the secret plugin (only pkcs7)")
	return cmd
}

func maxArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("'%s' takes at most %d argument(s), got %d", c.CommandPath(), n, len(args))
		}
		return nil
	}
}

// pkcs7Config is the pkcs7 plugin's key files for the project.
func (a *app) pkcs7Config(plugin string) (boltsecret.Config, error) {
	if plugin != "pkcs7" {
		return boltsecret.Config{}, usagef("unknown secret plugin %q: only pkcs7 is supported", plugin)
	}
	dir, err := a.projectDir()
	if err != nil {
		return boltsecret.Config{}, err
	}
	o, err := inventory.WithProjectConfig(inventory.Options{}, dir)
	if err != nil {
		return boltsecret.Config{}, inputError{err}
	}
	cfg, err := boltsecret.NewConfig(dir, o.Plugins["pkcs7"])
	if err != nil {
		return boltsecret.Config{}, inputError{err}
	}
	return cfg, nil
}

// readSecret reads a value from standard input: asked for without echo
// on a terminal, else all of it (one trailing newline dropped).
func (a *app) readSecret(prompt string) ([]byte, error) {
	if f, ok := a.stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(a.stderr, "%s: ", prompt)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		return b, err
	}
	b, err := io.ReadAll(io.LimitReader(a.stdin, 16<<20))
	if err != nil {
		return nil, err
	}
	return []byte(strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")), nil
}
