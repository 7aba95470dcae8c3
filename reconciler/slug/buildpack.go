package slug

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	fluxgit "github.com/fluxcd/pkg/git"
	"github.com/fluxcd/pkg/git/gogit"
	"github.com/fluxcd/pkg/git/repository"
	"github.com/manifold-paas/manifold/drivers/buildstep"
	"gopkg.in/yaml.v3"

	"github.com/manifold-paas/manifold/spec"
)

// builtinFS holds the built-in buildpacks as real bin/detect, bin/compile and
// bin/release scripts, so they go through the same API as third-party ones.
//
//go:embed builtin
var builtinFS embed.FS

// Builtins returns the built-in buildpacks' names in the order detection tries them
// when a request names no buildpack: the first whose bin/detect applies builds the app.
func Builtins() []string { return []string{"go", "static", "procfile"} }

// builtinVars are the config vars each built-in reads at build time besides BUILD_*:
// their values are part of the slug key.
var builtinVars = map[string][]string{
	"go": {"CGO_ENABLED", "GOEXPERIMENT", "GOFLAGS", "GO_INSTALL_PACKAGE_SPEC"},
}

// buildpack is one resolved buildpack, ready to run.
type buildpack struct {
	// name is what the request said: a built-in name, a folder or a git URL.
	name string
	// dir holds bin/detect, bin/compile and (optionally) bin/release.
	dir string
	// version identifies the buildpack's content for the slug key: the built-in's
	// script digest (and Go toolchain), the folder's digest, the git commit.
	version string
	// vars are config vars it declares it reads at build time.
	vars []string
}

// toolchain caches facts about the build host: those that enter slug keys, and the
// daemon's module download settings.
type toolchain struct {
	once      sync.Once
	goVersion string
	scripts   string // digest of the embedded built-in scripts
	// goNetEnv is the daemon's own `go env` of spec.BuildEnvNames (NAME=value, set
	// ones only): the default of the network step's settings, which say where modules
	// come from, never what is built (not part of the slug key).
	goNetEnv []string
}

func (t *toolchain) load(pathEnv string) {
	t.once.Do(func() {
		cmd := exec.Command("go", "env", "GOVERSION")
		cmd.Env = []string{"PATH=" + pathEnv, "GOTOOLCHAIN=local", "HOME=" + os.TempDir()}
		if lp, err := lookPath("go", pathEnv); err == nil {
			cmd.Path = lp
			if out, err := cmd.Output(); err == nil {
				t.goVersion = strings.TrimSpace(string(out))
			}
		}
		if t.goVersion == "" {
			t.goVersion = "no-go"
		}
		t.goNetEnv = daemonGoEnv(pathEnv)
		sum := sha256.New()
		_ = fs.WalkDir(builtinFS, "builtin", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			raw, err := builtinFS.ReadFile(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(sum, "%s %d\x00", p, len(raw))
			sum.Write(raw)
			return nil
		})
		t.scripts = hex.EncodeToString(sum.Sum(nil))[:16]
	})
}

// daemonGoEnv reads spec.BuildEnvNames from the daemon's own `go env` (its environment and
// go env file); nil when the host has no go.
func daemonGoEnv(pathEnv string) []string {
	lp, err := lookPath("go", pathEnv)
	if err != nil {
		return nil
	}
	names := spec.BuildEnvNames()
	cmd := exec.Command(lp, append([]string{"env", "-json"}, names...)...)
	cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	var values map[string]string
	if err := json.Unmarshal(out, &values); err != nil {
		return nil
	}
	var env []string
	for _, name := range names {
		if v := values[name]; v != "" {
			env = append(env, name+"="+v)
		}
	}
	return env
}

// lookPath finds file in the PATH list pathEnv (exec.LookPath only reads the process's).
func lookPath(file, pathEnv string) (string, error) {
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, file)
		if info, err := os.Stat(p); err == nil && info.Mode().IsRegular() && info.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}

// isBuiltin reports whether name is a built-in buildpack.
func isBuiltin(name string) bool {
	for _, b := range Builtins() {
		if b == name {
			return true
		}
	}
	return false
}

// builtin materializes a built-in's scripts under workDir (once per script digest)
// and returns it.
func (b *Builder) builtin(name string) (*buildpack, error) {
	version := "builtin-" + b.tools.scripts
	if name == "go" {
		version += "+" + b.tools.goVersion
	}
	dir := filepath.Join(b.workDir(), "buildpacks", "builtin-"+name+"-"+b.tools.scripts)
	if _, err := os.Stat(filepath.Join(dir, "bin", "compile")); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return nil, err
		}
		tmp, err := os.MkdirTemp(filepath.Dir(dir), ".tmp-"+name+"-")
		if err != nil {
			return nil, err
		}
		defer removeTree(tmp)
		sub, err := fs.Sub(builtinFS, "builtin/"+name)
		if err != nil {
			return nil, err
		}
		err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			target := filepath.Join(tmp, filepath.FromSlash(p))
			if d.IsDir() {
				return os.MkdirAll(target, 0o755)
			}
			raw, err := fs.ReadFile(sub, p)
			if err != nil {
				return err
			}
			// embed keeps no modes; every built-in file is an executable script.
			return os.WriteFile(target, raw, 0o755)
		})
		if err != nil {
			return nil, fmt.Errorf("write built-in buildpack %s: %w", name, err)
		}
		// Another build may have won the race; its copy is identical.
		if err := os.Rename(tmp, dir); err != nil && !dirHas(dir, "bin/compile") {
			return nil, fmt.Errorf("write built-in buildpack %s: %w", name, err)
		}
	}
	return &buildpack{name: name, dir: dir, version: version, vars: builtinVars[name]}, nil
}

func dirHas(dir, rel string) bool {
	_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
	return err == nil
}

// isGitURL reports whether a buildpack name is a git URL rather than a folder.
func isGitURL(name string) bool {
	return strings.Contains(name, "://") || strings.HasPrefix(name, "git@")
}

// resolve turns a buildpack name into a runnable buildpack: a built-in, a local
// folder, or a git URL with an optional "#ref" (tag, branch or commit).
func (b *Builder) resolve(ctx context.Context, name string) (*buildpack, error) {
	switch {
	case isBuiltin(name):
		return b.builtin(name)
	case isGitURL(name):
		return b.cloneBuildpack(ctx, name)
	case name == "":
		return nil, errors.New("empty buildpack name")
	default:
		dir, err := filepath.Abs(name)
		if err != nil {
			return nil, err
		}
		info, err := os.Stat(dir)
		if err != nil {
			return nil, fmt.Errorf("not a built-in (%s), a git URL or a folder: %w", strings.Join(Builtins(), ", "), err)
		}
		if !info.IsDir() {
			return nil, fmt.Errorf("%s is not a folder", dir)
		}
		if err := checkLayout(dir); err != nil {
			return nil, err
		}
		digest, err := DigestDir(dir)
		if err != nil {
			return nil, err
		}
		return &buildpack{name: name, dir: dir, version: digest}, nil
	}
}

// checkLayout says what is missing when dir is not a buildpack.
func checkLayout(dir string) error {
	for _, script := range []string{"bin/detect", "bin/compile"} {
		info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(script)))
		if err != nil {
			return fmt.Errorf("not a buildpack: %s has no %s", dir, script)
		}
		if info.Mode()&0o111 == 0 {
			return fmt.Errorf("not a buildpack: %s/%s is not executable", dir, script)
		}
	}
	return nil
}

var fullCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// cloneBuildpack clones a git buildpack "URL#ref" with fluxcd's go-git client into
// the work dir, one folder per commit; a ref that is a full commit id already cloned
// is not fetched again.
func (b *Builder) cloneBuildpack(ctx context.Context, name string) (*buildpack, error) {
	rawURL, ref, _ := strings.Cut(name, "#")
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("git URL %q: %w", rawURL, err)
	}
	urlSum := sha256.Sum256([]byte(rawURL))
	base := filepath.Join(b.workDir(), "buildpacks", "git-"+hex.EncodeToString(urlSum[:])[:16])
	if fullCommit.MatchString(ref) && dirHas(base+"-"+ref, "bin/compile") {
		return &buildpack{name: name, dir: base + "-" + ref, version: ref}, nil
	}
	if err := os.MkdirAll(filepath.Dir(base), 0o755); err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(base), ".clone-")
	if err != nil {
		return nil, err
	}
	defer removeTree(tmp)
	// fluxcd's auth options know http(s) and ssh only. A local file:// repository
	// needs no credentials: empty HTTP options make the client use none.
	auth := &fluxgit.AuthOptions{Transport: fluxgit.HTTP}
	if u.Scheme != "file" {
		if auth, err = fluxgit.NewAuthOptions(*u, nil); err != nil {
			return nil, fmt.Errorf("git URL %q: %w", rawURL, err)
		}
	}

	// A ref may be a commit, a tag or a branch; try them in that order of precision.
	// Without a ref: the main branch, then master.
	var strategies []repository.CheckoutStrategy
	switch {
	case fullCommit.MatchString(ref):
		strategies = append(strategies, repository.CheckoutStrategy{Commit: ref})
	case ref == "":
		strategies = append(strategies,
			repository.CheckoutStrategy{Branch: "main"},
			repository.CheckoutStrategy{Branch: "master"})
	default:
		strategies = append(strategies,
			repository.CheckoutStrategy{Tag: ref},
			repository.CheckoutStrategy{Branch: ref})
	}
	var commit *fluxgit.Commit
	var errs []error
	for i, strategy := range strategies {
		dir := filepath.Join(tmp, fmt.Sprint(i))
		client, err := gogit.NewClient(dir, auth, gogit.WithDiskStorage())
		if err != nil {
			return nil, fmt.Errorf("clone %s: %w", rawURL, err)
		}
		commit, err = client.Clone(ctx, rawURL, repository.CloneConfig{CheckoutStrategy: strategy, ShallowClone: true})
		client.Close()
		if err == nil {
			tmp = dir
			break
		}
		errs = append(errs, err)
	}
	if commit == nil {
		return nil, fmt.Errorf("clone %s at %q: %w", rawURL, ref, errors.Join(errs...))
	}
	hash := commit.Hash.String()
	final := base + "-" + hash
	// git keeps the executable bit, but not every host that served the repo did.
	for _, script := range []string{"detect", "compile", "release"} {
		p := filepath.Join(tmp, "bin", script)
		if info, err := os.Stat(p); err == nil {
			_ = os.Chmod(p, info.Mode().Perm()|0o111)
		}
	}
	if err := checkLayout(tmp); err != nil {
		return nil, fmt.Errorf("%s at %s: %w", rawURL, hash, err)
	}
	if !dirHas(final, "bin/compile") {
		_ = removeTree(final)
		if err := os.Rename(tmp, final); err != nil && !dirHas(final, "bin/compile") {
			return nil, err
		}
	}
	return &buildpack{name: name, dir: final, version: "git-" + hash}, nil
}

// releaseInfo is the part of bin/release's YAML that manifold uses.
type releaseInfo struct {
	DefaultProcessTypes map[string]string `yaml:"default_process_types"`
}

// stepEnv is the environment of every buildpack step. Config vars are not in it:
// buildpacks read them from ENV_DIR, as on Heroku.
func (b *Builder) stepEnv(stack, home, tmp string) []string {
	env := []string{
		"PATH=" + b.pathEnv(),
		"HOME=" + home,
		"TMPDIR=" + tmp,
		"STACK=" + stack,
		"LANG=C.UTF-8",
	}
	return append(env, b.Env...)
}

// steps runs one build's buildpack scripts through the Builder's Runner.
type steps struct {
	runner   Runner
	app      string
	stack    string
	env      []string
	buildDir string
	// mounts are the build's own folders (scratch, CACHE_DIR); each step adds its
	// buildpack's.
	mounts []buildstep.Mount
}

// run runs bp's bin/<script> with args in BUILD_DIR.
func (s *steps) run(ctx context.Context, bp *buildpack, script string, stdout, stderr io.Writer, args ...string) error {
	return s.runner.Run(ctx, buildstep.Cmd{
		App:    s.app,
		Stack:  s.stack,
		Path:   filepath.Join(bp.dir, "bin", script),
		Args:   args,
		Dir:    s.buildDir,
		Env:    s.env,
		Stdout: stdout,
		Stderr: stderr,
		Mounts: append(slices.Clip(s.mounts), buildstep.Mount{Path: bp.dir, ReadOnly: true}),
	})
}

// detect runs bin/detect and returns whether it applies and the name it printed.
func (s *steps) detect(ctx context.Context, bp *buildpack, out io.Writer) (bool, string, error) {
	var stdout bytes.Buffer
	err := s.run(ctx, bp, "detect", &stdout, out, s.buildDir)
	var exit *buildstep.ExitError
	if errors.As(err, &exit) && ctx.Err() == nil {
		return false, "", nil
	}
	if err != nil {
		return false, "", err
	}
	label := strings.TrimSpace(strings.SplitN(stdout.String(), "\n", 2)[0])
	if label == "" {
		label = path.Base(bp.name)
	}
	return true, label, nil
}

// download runs bp's bin/download BUILD_DIR CACHE_DIR ENV_DIR (manifold's network
// step), when bp has one, through the host runner: on the build host, with the
// network and netEnv (the platform's module settings) added to the step's
// environment. Any runner's compile then works offline.
func (s *steps) download(ctx context.Context, bp *buildpack, cacheDir, envDir string, netEnv []string, out io.Writer) error {
	script := filepath.Join(bp.dir, "bin", "download")
	if _, err := os.Stat(script); err != nil {
		return nil
	}
	env := append(slices.Clip(s.env), netEnv...)
	return buildstep.HostRunner{}.Run(ctx, buildstep.Cmd{
		App: s.app, Stack: s.stack, Path: script, Args: []string{s.buildDir, cacheDir, envDir},
		Dir: s.buildDir, Env: env, Stdout: out, Stderr: out,
	})
}

// compile runs bin/compile BUILD_DIR CACHE_DIR ENV_DIR.
func (s *steps) compile(ctx context.Context, bp *buildpack, cacheDir, envDir string, out io.Writer) error {
	return s.run(ctx, bp, "compile", out, out, s.buildDir, cacheDir, envDir)
}

// release runs bin/release (when the buildpack has one) and returns its default
// process types.
func (s *steps) release(ctx context.Context, bp *buildpack, out io.Writer) (map[string]string, error) {
	if _, err := os.Stat(filepath.Join(bp.dir, "bin", "release")); err != nil {
		return nil, nil
	}
	var stdout bytes.Buffer
	if err := s.run(ctx, bp, "release", &stdout, out, s.buildDir); err != nil {
		return nil, fmt.Errorf("bin/release: %w", err)
	}
	var info releaseInfo
	if err := yaml.Unmarshal(stdout.Bytes(), &info); err != nil {
		return nil, fmt.Errorf("bin/release printed invalid YAML: %w", err)
	}
	return info.DefaultProcessTypes, nil
}
