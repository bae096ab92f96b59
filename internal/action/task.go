package action

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/user"
	"path"
	"sort"
	"strings"
	"sync"

	"github.com/muster-run/muster"
	"github.com/muster-run/muster/internal/task"
)

// TaskRun is one task with validated parameters, prepared once and run on
// many targets.
type TaskRun struct {
	Task   *task.Task
	Index  *task.Index
	Params map[string]any
	Noop   bool
	// Secrets are the sensitive parameters' values, scrubbed from results.
	Secrets []string

	mu       sync.Mutex
	payloads map[string]*payload // by implementation file name
}

// payload is an implementation's files packed as a tar archive, named by
// the archive's content hash.
type payload struct {
	data      []byte
	hash      string
	exe       string // executable's path under the install dir
	installed bool   // the task ships files: pass _installdir
	err       error
}

func (tr *TaskRun) payload(im *task.Implementation) *payload {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	if p, ok := tr.payloads[im.Name]; ok {
		return p
	}
	if tr.payloads == nil {
		tr.payloads = map[string]*payload{}
	}
	p := &payload{installed: tr.Task.HasFiles(im)}
	var files []task.File
	if p.installed {
		files, p.err = tr.Task.InstallFiles(tr.Index, im)
		p.exe = tr.Task.Module + "/tasks/" + im.Name
	} else {
		// Without files the executable sits alone in the directory, as in Bolt.
		p.exe = im.Name
		files = []task.File{{LocalPath: im.Path, InstallPath: im.Name}}
	}
	if p.err == nil {
		p.data, p.err = packFiles(files, p.exe)
	}
	if p.err == nil {
		sum := sha256.Sum256(p.data)
		p.hash = hex.EncodeToString(sum[:12])
	}
	tr.payloads[im.Name] = p
	return p
}

// packFiles writes files into a tar archive at their install paths. The
// executable is made executable by its owner.
func packFiles(files []task.File, exe string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.InstallPath); d != "." && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	sorted := make([]string, 0, len(dirs))
	for d := range dirs {
		sorted = append(sorted, d)
	}
	sort.Strings(sorted)
	for _, d := range sorted {
		if err := tw.WriteHeader(&tar.Header{Name: d + "/", Mode: 0o700, Typeflag: tar.TypeDir}); err != nil {
			return nil, err
		}
	}
	for _, f := range files {
		b, err := os.ReadFile(f.LocalPath)
		if err != nil {
			return nil, muster.Errorf(muster.KindFile, "reading task file: %w", err)
		}
		fi, err := os.Stat(f.LocalPath)
		if err != nil {
			return nil, err
		}
		mode := int64(fi.Mode().Perm() | 0o400)
		if f.InstallPath == exe {
			mode |= 0o700
		}
		if err := tw.WriteHeader(&tar.Header{Name: f.InstallPath, Mode: mode, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	// The last entry tells a whole archive from one cut short.
	if err := tw.WriteHeader(&tar.Header{Name: taskComplete, Mode: 0o600, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// taskComplete is the last entry of a task archive, at the top of the
// install directory.
const taskComplete = ".muster-complete"

// effectiveUser returns who an action on t runs as, as far as muster can
// tell: the run-as user, else the login user, else (local transport) the
// user of this process. It is "" for an SSH target whose user comes from
// the SSH client config.
func effectiveUser(t *muster.Target, opts Options) string {
	if u := runAsUser(t, opts); u != "" {
		return u
	}
	if t.User != "" {
		return t.User
	}
	if t.Transport == "local" {
		if u, err := user.Current(); err == nil {
			return u.Username
		}
	}
	return ""
}

// taskCacheDir is the task cache directory of one user on a target:
// base/muster.<token>.<user, escaped as a download directory>. Every user
// has their own, since each must own theirs.
func taskCacheDir(base, token, user string) string {
	return base + "/muster." + token + "." + targetDirName(user)
}

// taskCache remembers, for this process, which payloads are already
// unpacked on which target (per user the task runs as), so a second run
// of the same task sends only its parameters.
type taskCache struct {
	mu    sync.Mutex
	token string
	have  map[string]*cacheEntry
}

type cacheEntry struct {
	mu      sync.Mutex // serialises the first upload to one target
	present bool
	target  *muster.Target
	opts    Options
	dir     string
}

func (c *taskCache) entry(key string, t *muster.Target, opts Options, dir func(token string) string) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.have == nil {
		c.have = map[string]*cacheEntry{}
		c.token = randomToken()
	}
	e, ok := c.have[key]
	if !ok {
		e = &cacheEntry{target: t, opts: opts, dir: dir(c.token)}
		c.have[key] = e
	}
	return e
}

// Task runs tr on t. The first run of a payload on a target streams the
// archive and runs the task in the same channel; later runs send only
// the parameters. Both cost one channel; a cache that vanished on the
// target (a reboot, a tmp cleaner) costs one more.
func (r *Runner) Task(ctx context.Context, t *muster.Target, tr *TaskRun, opts Options) *muster.Result {
	name := tr.Task.Name
	im, err := tr.Task.Select(t.Name, t.Features)
	if err != nil {
		return failed(t, "task", name, err)
	}
	p := tr.payload(im)
	if p.err != nil {
		return failed(t, "task", name, p.err)
	}
	if tr.Noop && !tr.Task.Metadata.SupportsNoop {
		return failed(t, "task", name, muster.Errorf(muster.KindInvalid, "Task %s does not support noop", name))
	}
	user := effectiveUser(t, opts)
	e := r.cache.entry(t.Name+"\x00"+user+"\x00"+p.hash, t, opts, func(token string) string {
		return taskCacheDir(r.tmpdir(t, opts), token, user)
	})
	cacheDir := e.dir
	installDir := cacheDir + "/" + p.hash

	params := make(map[string]any, len(tr.Params)+3)
	for k, v := range tr.Params {
		params[k] = v
	}
	params["_task"] = name
	if tr.Noop {
		params["_noop"] = true
	}
	if p.installed {
		params["_installdir"] = installDir
	}
	input := im.InputMethod
	var env map[string]string
	var stdinJSON []byte
	if input == task.InputEnvironment || input == task.InputBoth || input == "" {
		env = task.EnvVars(params)
	}
	if input == task.InputStdin || input == task.InputBoth || input == "" {
		stdinJSON = task.StdinJSON(params)
	}
	for k, v := range opts.Env {
		if env == nil {
			env = map[string]string{}
		}
		env[k] = v
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	setup := setupMarker()
	missing := "muster-cache-missing-" + r.cache.token
	for attempt := 0; ; attempt++ {
		send := !e.present
		prog := taskProgram(cacheDir, installDir, p, interpreter(t, im.Name), stdinJSON != nil, send, setup, missing)
		var stdin bytes.Buffer
		stdin.Write(stdinJSON)
		stdin.WriteByte('\n')
		if err := writeEnv(&stdin, env); err != nil {
			return failed(t, "task", name, err)
		}
		if send {
			stdin.Write(p.data)
		}
		var out output
		liveOut, liveErr := nilWriters(t, opts)
		liveOut, liveErr = scrubbing(liveOut, tr.Secrets), scrubbing(liveErr, tr.Secrets)
		so, se := out.writers(liveOut, liveErr)
		prog.payload = stdin.Bytes()
		code, err := r.run(ctx, t, prog, so, se, opts)
		flush(liveOut)
		flush(liveErr)
		if err != nil {
			return failed(t, "task", name, err)
		}
		v := out.value(code)
		stderr := v["stderr"].(string)
		if !send && code == 97 && strings.Contains(stderr, missing) && attempt == 0 {
			e.present = false // the cache was removed on the target: send again
			continue
		}
		if msg, ok := setupFailure(stderr, setup); ok {
			return failed(t, "task", name, muster.Errorf(muster.KindFile, "task %s on %s: %s", name, t.Name, msg).WithCode("TMPDIR_ERROR"))
		}
		e.present = true
		value, terr := task.InterpretTaskOutput(name, v["stdout"].(string), stderr, code)
		res := &muster.Result{Target: t.Name, Action: "task", Object: name, Value: value}
		if terr != nil {
			res.Error = terr
		}
		scrub(res, tr.Secrets)
		return res
	}
}

// holds reports whether this runner unpacked tasks on the target named
// name, whose cache Cleanup will remove over the same connection.
func (c *taskCache) holds(name string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.have {
		if e.target.Name == name {
			return true
		}
	}
	return false
}

// Cleanup removes the task cache from every target where this runner
// unpacked tasks: one channel per target (and run-as user) per process.
func (r *Runner) Cleanup(ctx context.Context) {
	r.removeCaches(ctx, func(string) bool { return true })
}

// Forget ends this runner's use of t, as a long-running caller (the
// server) does for a target it has not used for a while: it removes the
// task cache unpacked there (over the open connection) and releases the
// connection. A later action on t connects and unpacks again.
func (r *Runner) Forget(ctx context.Context, t *muster.Target) {
	r.removeCaches(ctx, func(name string) bool { return name == t.Name })
	r.Release(t)
}

// removeCaches removes the task caches on the targets whose names match,
// and forgets them.
func (r *Runner) removeCaches(ctx context.Context, match func(target string) bool) {
	r.cache.mu.Lock()
	dirs := map[string]*cacheEntry{}
	for k, e := range r.cache.have {
		if !match(e.target.Name) {
			continue
		}
		if e.present {
			dirs[e.target.Name+"\x00"+e.dir] = e
		}
		delete(r.cache.have, k)
	}
	r.cache.mu.Unlock()
	var wg sync.WaitGroup
	window := make(chan struct{}, 100)
	for _, e := range dirs {
		wg.Add(1)
		window <- struct{}{}
		go func(e *cacheEntry) {
			defer wg.Done()
			defer func() { <-window }()
			// Best effort: a target that went away keeps a private, mode-700 directory.
			opts := e.opts
			opts.Guard = "" // removing the cache is not the guarded work
			_, _ = r.run(ctx, e.target, program{work: "rm -rf " + quote(e.dir)}, nil, nil, opts)
		}(e)
	}
	wg.Wait()
}

// scrub replaces every occurrence of a secret in the result's strings, so
// a task that echoes a sensitive parameter cannot leak it.
func scrub(res *muster.Result, secrets []string) {
	if len(secrets) == 0 {
		return
	}
	clean := func(s string) string {
		for _, x := range secrets {
			if x != "" {
				s = strings.ReplaceAll(s, x, task.Redacted)
			}
		}
		return s
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case string:
			return clean(x)
		case map[string]any:
			for k, vv := range x {
				x[k] = walk(vv)
			}
			return x
		case []any:
			for i, vv := range x {
				x[i] = walk(vv)
			}
			return x
		}
		return v
	}
	walk(res.Value)
	if res.Error != nil {
		res.Error.Msg = clean(res.Error.Msg)
		walk(res.Error.Details)
	}
}
