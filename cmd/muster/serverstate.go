package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/api"
	"github.com/muster-run/muster/internal/secret"
	"github.com/muster-run/muster/internal/store/postgres"
	"github.com/muster-run/muster/internal/store/sqlite"
)

// defaultServerURL is where the job commands look for the server.
const defaultServerURL = "http://127.0.0.1:7420"

// defaultDataDir is the server's state directory: $MUSTER_DATA_DIR, else
// $XDG_DATA_HOME/muster, else ~/.local/share/muster.
func defaultDataDir() string {
	if d := os.Getenv("MUSTER_DATA_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "muster")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".muster"
	}
	return filepath.Join(home, ".local", "share", "muster")
}

// openStore opens the queue: PostgreSQL for a postgres:// URL, else SQLite
// at the given path ("sqlite:PATH" or a bare path), else SQLite in the
// data directory. It returns a description without any password.
func openStore(ctx context.Context, database, dataDir string, opts ...muster.StoreOption) (muster.Store, string, error) {
	switch {
	case strings.HasPrefix(database, "postgres://") || strings.HasPrefix(database, "postgresql://"):
		s, err := postgres.Open(ctx, database, opts...)
		if err != nil {
			return nil, "", fmt.Errorf("opening PostgreSQL at %s: %w", redactURL(database), err)
		}
		return s, "PostgreSQL " + redactURL(database), nil
	case strings.Contains(database, "://"):
		return nil, "", usagef("--database %q: use postgres://... or a SQLite file path", redactURL(database))
	}
	path := strings.TrimPrefix(database, "sqlite:")
	if path == "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return nil, "", fmt.Errorf("creating the data directory: %w", err)
		}
		path = filepath.Join(dataDir, "muster.db")
	}
	s, err := sqlite.Open(ctx, path, opts...)
	if errors.Is(err, sqlite.ErrCorrupt) {
		return nil, "", err // it names the file and says what to do
	}
	if err != nil {
		return nil, "", fmt.Errorf("opening SQLite at %s: %w", path, err)
	}
	return s, "SQLite " + path, nil
}

// redactURL hides a URL's password.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return u
	}
	if user, _, hasPW := strings.Cut(userinfo, ":"); hasPW {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return u
}

// loadSecretBox reads the key that seals job secrets: $MUSTER_SECRET_KEY
// (64 hex digits), else the key file, created (mode 0600) when create is
// set and it does not exist. Several servers on one database need the
// same key.
func loadSecretBox(path string, create bool) (*secret.Box, bool, error) {
	text := os.Getenv("MUSTER_SECRET_KEY")
	created := false
	if text == "" {
		b, err := os.ReadFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if text, err = secret.NewKey(); err != nil {
				return nil, false, err
			}
			if err := writeFileExcl(path, text+"\n"); err != nil {
				return nil, false, fmt.Errorf("creating the secret key %s: %w", path, err)
			}
			created = true
		case err != nil:
			return nil, false, fmt.Errorf("reading the secret key: %w", err)
		default:
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				return nil, false, fmt.Errorf("secret key %s is readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
			}
			text = string(b)
		}
	}
	key, err := secret.ParseKey(text)
	if err != nil {
		return nil, false, fmt.Errorf("secret key %s: %w", path, err)
	}
	box, err := secret.New(key)
	return box, created, err
}

// writeFileExcl creates path with mode 0600, failing if it exists.
func writeFileExcl(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return createExcl(path, content, 0o600)
}

// createExcl creates path with perm and content, failing (fs.ErrExist) if
// it exists.
func createExcl(path, content string, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// bootstrapAdmin creates the first admin token when the store has none,
// and writes it to path (mode 0600) for the job commands on this machine.
func bootstrapAdmin(ctx context.Context, store muster.Store, path string, log *slog.Logger) error {
	tokens, err := store.ListTokens(ctx)
	if err != nil {
		return fmt.Errorf("reading API tokens: %w", err)
	}
	if hasLiveAdmin(tokens) {
		return nil
	}
	secretText, hash, err := api.NewTokenSecret()
	if err != nil {
		return err
	}
	name := "admin"
	for i := 2; ; i++ {
		if !tokenNameTaken(tokens, name) {
			break
		}
		name = fmt.Sprintf("admin-%d", i)
	}
	_ = os.Remove(path) // a stale token file from a previous database
	if err := writeFileExcl(path, secretText+"\n"); err != nil {
		return fmt.Errorf("writing the admin token: %w", err)
	}
	if _, err := store.CreateToken(ctx, muster.Token{Name: name, Role: muster.RoleAdmin, CreatedBy: "local:" + localUser()}, hash); err != nil {
		os.Remove(path)
		// Another server on the same database may have just made one.
		if again, lerr := store.ListTokens(ctx); lerr == nil && hasLiveAdmin(again) {
			log.Info("another server created the admin token first; use its token file or 'muster token create --local'")
			return nil
		}
		return fmt.Errorf("creating the admin token: %w", err)
	}
	_ = store.Audit(ctx, muster.AuditEntry{Actor: "local:" + localUser(), Role: muster.RoleAdmin, Action: "token.create",
		Object: "token/" + name, Remote: "local", Detail: `{"bootstrap":true}`})
	log.Info("created an admin API token", "name", name, "file", path)
	return nil
}

func hasLiveAdmin(tokens []muster.Token) bool {
	for _, t := range tokens {
		if t.Role == muster.RoleAdmin && t.RevokedAt.IsZero() {
			return true
		}
	}
	return false
}

func tokenNameTaken(tokens []muster.Token, name string) bool {
	for _, t := range tokens {
		if t.Name == name && t.RevokedAt.IsZero() {
			return true
		}
	}
	return false
}

func localUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return fmt.Sprint(os.Getuid())
}
