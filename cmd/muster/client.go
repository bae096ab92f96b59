package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster/internal/api"
)

// clientFlags say how the job and token commands reach the server.
type clientFlags struct {
	server, tokenFile, caFile string
}

func (f *clientFlags) register(c *cobra.Command) {
	p := c.PersistentFlags()
	p.StringVar(&f.server, "server", "", "server URL (default $MUSTER_SERVER, else "+defaultServerURL+")")
	p.StringVar(&f.tokenFile, "token-file", "", "file holding the API token (default: $MUSTER_TOKEN, else <data-dir>/admin.token as written by 'muster server')")
	p.StringVar(&f.caFile, "ca-file", "", "CA certificate (PEM) that signed the server's TLS certificate")
}

// client builds the API client: the URL from --server or $MUSTER_SERVER,
// the token from --token-file, $MUSTER_TOKEN, or the admin token a server
// on this machine wrote into its data directory.
func (f *clientFlags) client() (*api.Client, error) {
	url := f.server
	if url == "" {
		url = os.Getenv("MUSTER_SERVER")
	}
	if url == "" {
		url = defaultServerURL
	}
	token, err := f.token()
	if err != nil {
		return nil, err
	}
	var opts []api.ClientOption
	if f.caFile != "" {
		opts = append(opts, api.WithCAFile(f.caFile))
	}
	c, err := api.NewClient(url, token, opts...)
	if err != nil {
		return nil, inputError{err}
	}
	return c, nil
}

func (f *clientFlags) token() (string, error) {
	path := f.tokenFile
	if path == "" {
		if t := strings.TrimSpace(os.Getenv("MUSTER_TOKEN")); t != "" {
			return t, nil
		}
		path = filepath.Join(defaultDataDir(), "admin.token")
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && f.tokenFile == "":
		return "", usagef("no API token: set MUSTER_TOKEN or --token-file (a server on this machine writes its admin token to %s)", path)
	case err != nil:
		return "", usagef("reading the API token: %v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" {
		return "", usagef("the token file %s is empty", path)
	}
	return t, nil
}

// apiError turns a client error into the CLI's error: a refused request is
// the user's (exit 2), anything else a failure (exit 1).
func apiError(err error) error {
	var ae *api.APIError
	if errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 404 {
		return inputError{err}
	}
	return err
}
