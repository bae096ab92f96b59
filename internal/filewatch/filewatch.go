// Package filewatch tells a long-running process when the files that
// configure it change: single files (an inventory) and directory trees
// (module paths holding tasks and plans). It watches with fsnotify and
// calls back once per burst of changes, so an editor's save (write to a
// temporary file, rename over the original) or a `git pull` touching many
// files leads to one reload, not dozens.
package filewatch

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Spec says what to watch.
type Spec struct {
	// Files are watched through their directories, by name, so a file
	// replaced by a rename, deleted or created later is seen.
	Files []string
	// Trees are directories watched with everything under them,
	// including directories created later. A tree that does not exist
	// yet is seen when it is created. Directories whose names start with
	// "." (.git) are skipped.
	Trees []string
	// Debounce is how long the files must stay quiet before the callback
	// runs. Default 300ms.
	Debounce time.Duration
	// Ready, when set, is called once the watches are in place: a change
	// made after it returns is seen.
	Ready func()
}

// Run watches until ctx ends, calling changed once after each burst of
// changes (from Run's goroutine: a slow callback delays the next one,
// never overlaps it) and warn for problems that do not stop the watch
// (a directory that cannot be watched, an event queue overflow, which is
// followed by a callback since changes may have been missed). It returns
// an error only when the watch cannot start.
func Run(ctx context.Context, s Spec, changed func(), warn func(error)) error {
	return RunPaths(ctx, s, func([]string) { changed() }, warn)
}

// RunPaths is Run, telling the callback which paths changed in the burst
// (sorted, each once): a watched file's name, or the path of what changed
// under a watched tree. After an event queue overflow the list may miss
// some; it is then empty.
func RunPaths(ctx context.Context, s Spec, changed func(paths []string), warn func(error)) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching files: %w", err)
	}
	defer w.Close()
	if s.Debounce <= 0 {
		s.Debounce = 300 * time.Millisecond
	}
	m := newMatcher(s)
	add := func(dir string) {
		if err := w.Add(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			warn(fmt.Errorf("cannot watch %s: %w", dir, err))
		}
	}
	for dir := range m.names {
		add(dir)
	}
	for _, root := range m.trees {
		addTree(root, add)
	}
	if s.Ready != nil {
		s.Ready()
	}

	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	burst := map[string]bool{}
	overflow := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Op == fsnotify.Chmod || !m.relevant(ev.Name) {
				continue
			}
			if ev.Has(fsnotify.Create) && m.inTree(ev.Name) {
				if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() {
					addTree(ev.Name, add)
				}
			}
			burst[filepath.Clean(ev.Name)] = true
			timer.Reset(s.Debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			warn(err)
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				overflow = true
				timer.Reset(s.Debounce)
			}
		case <-timer.C:
			paths := make([]string, 0, len(burst))
			if !overflow {
				for p := range burst {
					paths = append(paths, p)
				}
				sort.Strings(paths)
			}
			burst, overflow = map[string]bool{}, false
			changed(paths)
		}
	}
}

// addTree adds root and every directory under it, but hidden ones.
func addTree(root string, add func(string)) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		add(p)
		return nil
	})
}

// matcher decides which paths matter.
type matcher struct {
	names map[string]map[string]bool // directory -> names of interest in it
	trees []string                   // cleaned absolute roots
}

func newMatcher(s Spec) *matcher {
	m := &matcher{names: map[string]map[string]bool{}}
	watchName := func(p string) {
		dir, base := filepath.Split(p)
		dir = filepath.Clean(dir)
		if m.names[dir] == nil {
			m.names[dir] = map[string]bool{}
		}
		m.names[dir][base] = true
	}
	for _, f := range s.Files {
		watchName(abs(f))
	}
	for _, t := range s.Trees {
		t = abs(t)
		m.trees = append(m.trees, t)
		watchName(t) // its creation, removal or replacement
	}
	return m
}

func abs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// relevant reports whether a change to path matters: a watched file or
// tree root by name, or anything inside a tree (hidden directories and
// editor droppings such as .swp and ~ files aside).
func (m *matcher) relevant(path string) bool {
	path = filepath.Clean(path)
	dir, base := filepath.Split(path)
	if m.names[filepath.Clean(dir)][base] {
		return true
	}
	if !m.inTree(path) {
		return false
	}
	return !strings.HasPrefix(base, ".") && !strings.HasSuffix(base, "~") && !strings.HasSuffix(base, ".swp")
}

// inTree reports whether path is a tree root or under one, outside
// hidden directories.
func (m *matcher) inTree(path string) bool {
	for _, root := range m.trees {
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
			continue
		}
		hidden := false
		for _, part := range strings.Split(filepath.Dir(rel), string(filepath.Separator)) {
			if strings.HasPrefix(part, ".") && part != "." {
				hidden = true
			}
		}
		if !hidden {
			return true
		}
	}
	return false
}
