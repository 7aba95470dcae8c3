package main

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

// newBuildCmd is `manifold build DIR`: a slug from a source folder, for local use and
// CI, in the same store the daemon uses (<state>/slugs).
func newBuildCmd() *cobra.Command {
	var (
		buildpacks []string
		config     []string
		stack      string
		state      string
		app        string
		timeLimit  time.Duration
		sizeLimit  int64
	)
	cmd := &cobra.Command{
		Use:   "build [--buildpack B]... [--stack S] [--state DIR] DIR",
		Short: "Build a source folder into a slug and print its key and size",
		Long: `Build runs Heroku-style buildpacks over a copy of DIR and stores the slug, keyed by
the source, the buildpacks, the stack and the BUILD_* config vars, under
<state>/slugs. Build output goes to stderr; stdout gets "<key> <size>", with
"(cached)" when the same inputs were built before.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			if app == "" {
				app = appNameFromDir(src)
			}
			vars := map[string]string{}
			for _, kv := range config {
				name, value, ok := strings.Cut(kv, "=")
				if !ok || name == "" {
					return fmt.Errorf("--config %q: want NAME=value", kv)
				}
				vars[name] = value
			}
			store, err := slug.OpenStore(filepath.Join(state, "slugs"))
			if err != nil {
				return err
			}
			stateDir, err := filepath.Abs(state)
			if err != nil {
				return err
			}
			builder := &slug.Builder{Store: store, TimeLimit: timeLimit, SizeLimit: sizeLimit, Env: goCaches(stateDir)}
			s, err := builder.Build(cmd.Context(), slug.Request{
				App: app, SourceDir: src, Buildpacks: buildpacks, Stack: stack, Config: vars,
				Output: cmd.ErrOrStderr(),
			})
			if err != nil {
				return err
			}
			cached := ""
			if s.Cached {
				cached = " (cached)"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s%s\n", s.Key, slug.FormatSize(s.Size), cached)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&buildpacks, "buildpack", "b", nil, "a buildpack to run, in order: "+strings.Join(slug.Builtins(), ", ")+", a folder or a git URL#ref (default: detect a built-in)")
	f.StringArrayVarP(&config, "config", "c", nil, "a config var NAME=value for ENV_DIR (repeatable)")
	f.StringVar(&stack, "stack", "manifold-24", "the stack the slug runs on")
	f.StringVar(&state, "state", ".manifold", "the state directory (slugs are stored under <state>/slugs)")
	f.StringVarP(&app, "app", "a", "", "the app name, for the build cache (default: the folder's name)")
	f.DurationVar(&timeLimit, "time-limit", slug.DefaultTimeLimit, "kill the build after this long")
	f.Int64Var(&sizeLimit, "size-limit", slug.DefaultSizeLimit, "the largest compressed slug, in bytes")
	return cmd
}

var notAppChar = regexp.MustCompile(`[^a-z0-9-]+`)

// appNameFromDir makes an app name of a folder's name: "My App" -> "my-app".
func appNameFromDir(dir string) string {
	name := strings.Trim(notAppChar.ReplaceAllString(strings.ToLower(filepath.Base(dir)), "-"), "-")
	if name == "" {
		return "app"
	}
	return name
}
