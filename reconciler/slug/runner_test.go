package slug_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-paas/manifold/drivers/buildstep"
	"github.com/manifold-paas/manifold/reconciler/slug"
)

// recordingRunner runs steps on the host and records them; fail makes a script exit
// with that code instead of running.
type recordingRunner struct {
	mu   sync.Mutex
	cmds []buildstep.Cmd
	fail map[string]int // script base name -> exit code
}

func (r *recordingRunner) Run(ctx context.Context, cmd buildstep.Cmd) error {
	r.mu.Lock()
	r.cmds = append(r.cmds, cmd)
	code, fail := r.fail[filepath.Base(cmd.Path)]
	r.mu.Unlock()
	if fail {
		_, _ = cmd.Stderr.Write([]byte("runner says no\n"))
		return &buildstep.ExitError{Code: code}
	}
	return buildstep.HostRunner{}.Run(ctx, cmd)
}

func (r *recordingRunner) scripts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.cmds {
		out = append(out, filepath.Base(filepath.Dir(filepath.Dir(c.Path)))+"/"+filepath.Base(c.Path))
	}
	return out
}

func TestRunnerSeesEveryStep(t *testing.T) {
	b := newBuilder(t)
	rec := &recordingRunner{}
	b.Runner = rec
	src := app(t, map[string]string{"public/index.html": "hi", "Procfile": "web: true\n"})
	s, err := b.Build(context.Background(), slug.Request{App: "site", SourceDir: src, Stack: "manifold-24"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Buildpacks[0] != "static" {
		t.Fatalf("buildpacks %v, want static", s.Buildpacks)
	}
	got := strings.Join(rec.scripts(), " ")
	// Built-ins are materialized as builtin-<name>-<digest>.
	for _, want := range []string{"go-", "/detect", "static-", "/compile", "/release"} {
		if !strings.Contains(got, want) {
			t.Errorf("steps %q lack %q", got, want)
		}
	}
	for _, c := range rec.cmds {
		if c.App != "site" || c.Stack != "manifold-24" {
			t.Errorf("cmd %s: app %q stack %q", c.Path, c.App, c.Stack)
		}
		if c.Stdout == nil || c.Stderr == nil {
			t.Errorf("cmd %s: nil writers", c.Path)
		}
		// Every path the step gets must be inside a mount, so a container runner
		// can bind them at the same paths.
		paths := append([]string{c.Path, c.Dir}, c.Args...)
		for _, p := range paths {
			if !filepath.IsAbs(p) {
				t.Errorf("cmd %s: path %q is relative", c.Path, p)
			}
			if !insideMount(p, c.Mounts) {
				t.Errorf("cmd %s: path %q is in none of the mounts %v", c.Path, p, c.Mounts)
			}
		}
		bp := filepath.Dir(filepath.Dir(c.Path))
		for _, m := range c.Mounts {
			if m.Path == bp && !m.ReadOnly {
				t.Errorf("cmd %s: buildpack mount %s is writable", c.Path, m.Path)
			}
		}
	}
}

func insideMount(p string, mounts []buildstep.Mount) bool {
	for _, m := range mounts {
		if rel, err := filepath.Rel(m.Path, p); err == nil && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}

func TestRunnerExitCodes(t *testing.T) {
	src := map[string]string{"public/index.html": "hi"}
	t.Run("detect exit is no match", func(t *testing.T) {
		b := newBuilder(t)
		b.Runner = &recordingRunner{fail: map[string]int{"detect": 1}}
		_, err := b.Build(context.Background(), slug.Request{App: "site", SourceDir: app(t, src)})
		if !errors.Is(err, slug.ErrNoBuildpack) {
			t.Fatalf("err %v, want ErrNoBuildpack", err)
		}
	})
	t.Run("compile exit is a compile error with the output", func(t *testing.T) {
		b := newBuilder(t)
		b.Runner = &recordingRunner{fail: map[string]int{"compile": 3}}
		_, err := b.Build(context.Background(), slug.Request{App: "site", SourceDir: app(t, src)})
		var be *slug.BuildError
		if !errors.Is(err, slug.ErrCompile) || !errors.As(err, &be) {
			t.Fatalf("err %v, want a BuildError with ErrCompile", err)
		}
		if be.Buildpack != "static" || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "runner says no") {
			t.Fatalf("err %v: want buildpack static, exit status 3 and the output", err)
		}
		if files := storeFiles(t, b); len(files) != 0 {
			t.Fatalf("failed build left %v in the store", files)
		}
	})
	t.Run("runner error in detect is a buildpack error", func(t *testing.T) {
		b := newBuilder(t)
		b.Runner = errRunner{}
		_, err := b.Build(context.Background(), slug.Request{App: "site", SourceDir: app(t, src)})
		if !errors.Is(err, slug.ErrBuildpack) || !strings.Contains(err.Error(), "no engine") {
			t.Fatalf("err %v, want ErrBuildpack naming the runner's error", err)
		}
	})
}

type errRunner struct{}

func (errRunner) Run(context.Context, buildstep.Cmd) error { return errors.New("no engine") }
