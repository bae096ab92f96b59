package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/spf13/cobra"

	"github.com/muster-run/muster/internal/project"
)

// projectNameRE is Bolt's rule for project (and module) names.
var projectNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// projectInventoryTemplate is the example inventory project init writes:
// valid as it is (it defines no target), with a commented example.
const projectInventoryTemplate = `# The inventory: your targets, their groups and how to reach them.
# Bolt's inventory format (version 2). See 'muster inventory show --help'.
# Uncomment and edit; 'muster inventory show -t all --detail' shows the result.
#
# groups:
#   - name: web
#     targets:
#       - web1.example.com
#       - web2.example.com
#     config:
#       ssh:
#         user: deploy
#   - name: db
#     targets:
#       - name: db1
#         uri: 10.0.0.5
#         vars:
#           role: primary
# config:
#   transport: ssh
#   ssh:
#     private-key: ~/.ssh/id_ed25519
#     host-key-check: true
#     known-hosts: ~/.ssh/known_hosts
#     port: 22
#     password:
#       _plugin: env_var
#       var: DEPLOY_PASSWORD
targets: []
`

// projectGitignore keeps what runs write out of version control.
const projectGitignore = `.rerun.json
downloads/
`

// projectInitCommand is 'muster project init'.
func (a *app) projectInitCommand() *cobra.Command {
	initCmd := &cobra.Command{
		Use:   "init [NAME]",
		Short: "Make the current directory (or --project) a muster project",
		Long: `Make a project, as 'bolt project init' does: write muster-project.yaml
with the project's NAME (default: the directory's name), an example
inventory.yaml (valid as written: every example line is a comment), a
.gitignore for what runs write (.rerun.json, downloads/), and a module
skeleton for the project's own code:

  modules/NAME/tasks/   tasks: NAME::<task> (a script plus <task>.json)
  modules/NAME/plans/   plans: NAME::<plan> (.yaml or .star)
  modules/NAME/files/   files plans and tasks refer to as NAME/<file>

A NAME starts with a lowercase letter and holds lowercase letters, digits
and underscores, as Bolt requires. The directory is the current one, or
--project DIR (created if missing). An existing muster-project.yaml or
bolt-project.yaml is never overwritten; an existing inventory.yaml or
.gitignore is kept as it is.`,
		Example: `  muster project init
  muster project init webfarm
  muster project init ops --project ./ops`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return a.projectInit(name)
		},
	}
	return group("project", "Create muster projects", initCmd)
}

// projectInit writes a new project; see projectInitCommand.
func (a *app) projectInit(name string) error {
	dir := a.flags.project
	if dir == "" {
		var err error
		if dir, err = os.Getwd(); err != nil {
			return err
		}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	given := name != ""
	if !given {
		name = filepath.Base(dir)
	}
	if !projectNameRE.MatchString(name) {
		if given {
			return usagef("project name %q is invalid: it must start with a lowercase letter and hold only lowercase letters, digits and underscores", name)
		}
		return usagef("the directory name %q is not a valid project name (lowercase letters, digits and underscores, starting with a letter): give one with 'muster project init NAME'", name)
	}
	for _, m := range project.Markers {
		if _, err := os.Stat(filepath.Join(dir, m)); err == nil {
			return inputError{fmt.Errorf("%s already exists: %s is a project already; nothing was changed", filepath.Join(dir, m), dir)}
		}
	}
	for _, sub := range []string{"tasks", "plans", "files"} {
		if err := os.MkdirAll(filepath.Join(dir, "modules", name, sub), 0o755); err != nil {
			return fmt.Errorf("creating the module skeleton: %w", err)
		}
	}
	keep := func(file, content string) error { // an existing file stays as it is
		if err := createExcl(filepath.Join(dir, file), content, 0o644); !errors.Is(err, fs.ErrExist) {
			return err
		}
		return nil
	}
	if err := keep("inventory.yaml", projectInventoryTemplate); err != nil {
		return err
	}
	if err := keep(".gitignore", projectGitignore); err != nil {
		return err
	}
	// The project file last: a project exists only once all is in place.
	projectFile := fmt.Sprintf("# muster project (Bolt's bolt-project.yaml works too)\nname: %s\n", name)
	path := filepath.Join(dir, "muster-project.yaml")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	if _, err := f.WriteString(projectFile); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "Created muster project %s at %s\n", name, dir)
	fmt.Fprintf(a.stdout, "  muster-project.yaml, inventory.yaml (an example to edit), .gitignore\n  modules/%s/{tasks,plans,files}/\n", name)
	return nil
}
