package review

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing/fstest"

	"github.com/manifold-paas/manifold/spec"
)

// OverlayEnv is the environment whose file (environments/review.hcl|yaml) overlays
// the apps of every review environment: smaller formations, test config.
const OverlayEnv = spec.ReviewEnvironment

// Apps returns the apps of review environment env from the config repo at its ref
// (tree): the base apps with the review overlay when the repo has one, each in env,
// answering only at <app>.<env>.<suffix> (never the domains of the base specs, which
// production answers), with no release pin (a review app builds its own ref).
func Apps(tree fs.FS, env string) ([]spec.App, error) {
	overlaid, err := withOverlay(tree)
	if err != nil {
		return nil, err
	}
	desired, diags := spec.Load(overlaid, spec.LoadOptions{Env: OverlayEnv})
	if len(diags) > 0 {
		return nil, fmt.Errorf("review environment %s does not load:\n%w", env, diags)
	}
	apps := make([]spec.App, 0, len(desired.Apps))
	for _, app := range desired.Apps {
		app.Env = env
		app.Domains = []string{fmt.Sprintf("%s.%s.%s", app.Name, env, desired.Platform.DomainSuffix)}
		app.Pin = nil
		// Secrets stay sealed for "review" (spec.Secret.Env): only those of the
		// overlay, sealed to its own keys, open here; any other does not.
		app.SoakSeconds = 0
		apps = append(apps, app)
	}
	return apps, nil
}

// withOverlay returns tree with an empty review environment when the repo declares
// none, so that the base apps load as they are.
func withOverlay(tree fs.FS) (fs.FS, error) {
	if _, err := spec.EnvironmentFile(tree, OverlayEnv); err == nil {
		return tree, nil
	}
	entries, err := fs.ReadDir(tree, "environments")
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read environments/: %w", err)
	}
	name := "environments/" + OverlayEnv + ".hcl"
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), OverlayEnv+".") {
			return nil, fmt.Errorf("%s does not declare environment %q", "environments/"+e.Name(), OverlayEnv)
		}
	}
	return overlayFS{FS: tree, extra: fstest.MapFS{name: {Data: []byte("environment \"" + OverlayEnv + "\" {}\n")}}, name: name}, nil
}

// overlayFS is tree plus one file, which also shows in its folder's listing. Only
// environments/ is listed: other environments' files are hidden, so that a review
// environment loads only its overlay.
type overlayFS struct {
	fs.FS
	extra fstest.MapFS
	name  string
}

func (o overlayFS) Open(name string) (fs.File, error) {
	if name == o.name || name == "environments" {
		return o.extra.Open(name)
	}
	return o.FS.Open(name)
}

func (o overlayFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if name == "environments" {
		return fs.ReadDir(o.extra, name)
	}
	return fs.ReadDir(o.FS, name)
}
