package inventory

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"
)

// WithProjectConfig fills what the plugins need from a project directory
// and its project file (muster-project.yaml, else bolt-project.yaml):
// ProjectDir, and, unless already set, Plugins (the file's "plugins") and
// PuppetDB (its "puppetdb"). A project without a file keeps o as it is.
func WithProjectConfig(o Options, dir string) (Options, error) {
	if o.ProjectDir == "" {
		o.ProjectDir = dir
	}
	for _, name := range []string{"muster-project.yaml", "bolt-project.yaml"} {
		path := filepath.Join(dir, name)
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return o, invalid(&Error{File: path, Msg: fmt.Sprintf("cannot read project file: %v", errors.Unwrap(err))})
		}
		var doc struct {
			Plugins  yaml.Node `yaml:"plugins"`
			PuppetDB yaml.Node `yaml:"puppetdb"`
		}
		if err := yaml.Unmarshal(b, &doc); err != nil {
			// the project file's own loader reports its syntax errors
			return o, nil
		}
		p := &parser{file: path}
		if o.Plugins == nil && doc.Plugins.Kind != 0 {
			v, err := p.block(&doc.Plugins, "", "plugins")
			if err != nil {
				return o, invalid(err)
			}
			o.Plugins = map[string]map[string]any{}
			for k, c := range v.(map[string]any) {
				m, ok := c.(map[string]any)
				if !ok && c != nil {
					return o, invalid(&Error{File: path, Line: doc.Plugins.Line, Msg: fmt.Sprintf("plugins.%s must be a mapping", k)})
				}
				o.Plugins[k] = m
			}
		}
		if o.PuppetDB == nil && doc.PuppetDB.Kind != 0 {
			v, err := p.block(&doc.PuppetDB, "", "puppetdb")
			if err != nil {
				return o, invalid(err)
			}
			o.PuppetDB, _ = v.(map[string]any)
		}
		return o, nil
	}
	return o, nil
}
