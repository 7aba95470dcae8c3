package slug

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/drivers/buildstep"
	"golang.org/x/sync/singleflight"
)

// Defaults for Builder's limits.
const (
	DefaultSizeLimit int64 = 500 << 20 // bytes, compressed, as Heroku's slug limit
	DefaultTimeLimit       = 15 * time.Minute
)

// keyFormat versions the slug key's recipe: changing how slugs are built changes it.
const keyFormat = "manifold-slug-key v1"

// Builder builds slugs into Store. Set the exported fields before the first Build and
// do not copy a Builder after; Build is safe for concurrent use. Builds of one key
// run once (concurrent callers wait for it); builds of one app run one at a time,
// since they share the app's build cache.
type Builder struct {
	// Store receives the slugs. Required.
	Store *Store
	// CacheDir holds one build cache per app (CACHE_DIR of bin/compile), kept between
	// builds. Default: <store>/cache.
	CacheDir string
	// WorkDir holds the builds' scratch folders and the fetched buildpacks.
	// Default: <store>/work.
	WorkDir string
	// SizeLimit is the largest compressed slug in bytes. 0: DefaultSizeLimit;
	// negative: no limit.
	SizeLimit int64
	// TimeLimit bounds a whole build; past it the build's processes are killed.
	// 0: DefaultTimeLimit.
	TimeLimit time.Duration
	// PathEnv is the PATH buildpacks run with (where they find go, sh, tar…).
	// Default: the daemon's own PATH.
	PathEnv string
	// Env adds NAME=value variables to every buildpack step's environment, for host
	// settings that do not change what is built: GOCACHE=<dir> makes the go
	// buildpack share one Go build cache between apps (Go's cache is content-addressed
	// and safe to share) instead of keeping one per app in CACHE_DIR. Not part of the
	// slug key.
	Env []string
	// Runner runs the buildpack steps. Nil: buildstep.HostRunner, processes of this host. The
	// Docker driver's BuildRunner runs them in a build container of the app's stack.
	Runner Runner

	mu       sync.Mutex
	appLocks map[string]*sync.Mutex
	flight   singleflight.Group
	tools    toolchain
}

// Request is one build.
type Request struct {
	// App names the app: its build cache and error messages use it.
	App string
	// SourceDir is the app's source tree; it is copied, never modified.
	SourceDir string
	// SourceDigest is spec.Source.Digest (or a git commit's tree id) when the caller
	// knows it; empty: DigestDir(SourceDir).
	SourceDigest string
	// Buildpacks run in order: built-in names, folders or git URLs ("URL#ref").
	// Empty: the first built-in whose bin/detect applies.
	Buildpacks []string
	// Stack names the run image; it enters the key and the STACK variable.
	Stack string
	// Config is the app's config vars. All are written to ENV_DIR; only BUILD_* vars
	// and those a built-in declares enter the slug key, so other changes never
	// rebuild (Heroku's semantics).
	Config map[string]string
	// NetEnv overrides the daemon's `go env` settings of the network step
	// (spec.BuildEnvNames: GOPROXY, GOPRIVATE, …): spec.Platform.BuildEnv. Platform settings
	// say where dependencies come from, not what is built: not part of the slug key.
	NetEnv map[string]string
	// Output receives the build's output live, Heroku-style ("-----> Go app
	// detected"). Nil discards it.
	Output io.Writer
}

// Slug is a built (or found) slug.
type Slug struct {
	// Key is "sha256:<hex>" of the build's inputs.
	Key string `json:"key"`
	// Path is the gzipped tarball of the app tree ("./bin/web" entries).
	Path string `json:"path"`
	// Size is the tarball's size in bytes.
	Size int64 `json:"size"`
	// ProcessTypes are the buildpacks' default_process_types with the Procfile's
	// types over them.
	ProcessTypes map[string]string `json:"process_types"`
	// Buildpacks are the buildpacks that ran, in order.
	Buildpacks []string `json:"buildpacks"`
	// Cached is true when this call built nothing: the slug was in the store or
	// another caller built it.
	Cached bool `json:"cached"`
}

var appName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

func (b *Builder) workDir() string {
	if b.WorkDir != "" {
		return b.WorkDir
	}
	return filepath.Join(b.Store.Dir(), "work")
}

func (b *Builder) cacheDir() string {
	if b.CacheDir != "" {
		return b.CacheDir
	}
	return filepath.Join(b.Store.Dir(), "cache")
}

func (b *Builder) pathEnv() string {
	if b.PathEnv != "" {
		return b.PathEnv
	}
	return os.Getenv("PATH")
}

func (b *Builder) runner() Runner {
	if b.Runner != nil {
		return b.Runner
	}
	return buildstep.HostRunner{}
}

func (b *Builder) sizeLimit() int64 {
	switch {
	case b.SizeLimit == 0:
		return DefaultSizeLimit
	case b.SizeLimit < 0:
		return 0
	}
	return b.SizeLimit
}

func (b *Builder) timeLimit() time.Duration {
	if b.TimeLimit <= 0 {
		return DefaultTimeLimit
	}
	return b.TimeLimit
}

// appLock returns the lock that serializes an app's builds (its cache dir).
func (b *Builder) appLock(app string) *sync.Mutex {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.appLocks == nil {
		b.appLocks = map[string]*sync.Mutex{}
	}
	l, ok := b.appLocks[app]
	if !ok {
		l = &sync.Mutex{}
		b.appLocks[app] = l
	}
	return l
}

// Build returns the slug of req: from the store when its key is there, else built by
// running the buildpacks over a copy of the source. A failed build leaves nothing in
// the store. Errors are *BuildError wrapping ErrNoBuildpack, ErrCompile, ErrTooLarge,
// ErrTimeout or ErrBuildpack, or an error naming the app for I/O failures.
func (b *Builder) Build(ctx context.Context, req Request) (Slug, error) {
	if b.Store == nil {
		return Slug{}, fmt.Errorf("build slug for %s: Builder has no Store", req.App)
	}
	if !appName.MatchString(req.App) {
		return Slug{}, fmt.Errorf("build slug: invalid app name %q", req.App)
	}
	if req.Output == nil {
		req.Output = io.Discard
	}
	out := &tailWriter{out: req.Output}
	b.tools.load(b.pathEnv())

	srcDir, err := filepath.Abs(req.SourceDir)
	if err != nil {
		return Slug{}, fmt.Errorf("build slug for %s: %w", req.App, err)
	}
	if info, err := os.Stat(srcDir); err != nil || !info.IsDir() {
		return Slug{}, fmt.Errorf("build slug for %s: source %s is not a folder", req.App, req.SourceDir)
	}
	packs, err := b.resolveAll(ctx, req)
	if err != nil {
		return Slug{}, err
	}
	skip := b.ownDirs()
	digest := req.SourceDigest
	if digest == "" {
		if insideAny(srcDir, skip) {
			digest, err = digestDir(srcDir, skip)
		} else {
			digest, err = DigestDir(srcDir)
		}
		if err != nil {
			return Slug{}, fmt.Errorf("build slug for %s: %w", req.App, err)
		}
	}
	key := slugKey(digest, req.Stack, packs, req.Config)

	if s, err := b.Store.lookup(key); err == nil {
		b.Store.touch(key) // in use again: a collector spares it
		s.Cached = true
		out.printf("-----> Slug %s is in the store (%s): nothing to build", key, FormatSize(s.Size))
		return s, nil
	}

	built := false
	ch := b.flight.DoChan(key, func() (any, error) {
		built = true
		if s, err := b.Store.lookup(key); err == nil {
			built = false
			return s, nil
		}
		return b.build(ctx, req, srcDir, digest, skip, packs, key, out)
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return Slug{}, res.Err
		}
		s := res.Val.(Slug)
		// built is only written by the goroutine that ran the function, before ch
		// delivers; reading it after the receive is ordered.
		s.Cached = !built
		return s, nil
	case <-ctx.Done():
		return Slug{}, fmt.Errorf("build slug for %s: %w", req.App, ctx.Err())
	}
}

// ownDirs are the builder's folders, left out of the source when it lives inside it.
func (b *Builder) ownDirs() map[string]bool {
	skip := map[string]bool{}
	for _, d := range []string{b.Store.Dir(), b.cacheDir(), b.workDir()} {
		if abs, err := filepath.Abs(d); err == nil {
			skip[abs] = true
		}
	}
	return skip
}

// insideAny reports whether one of dirs lies inside src.
func insideAny(src string, dirs map[string]bool) bool {
	for d := range dirs {
		if rel, err := filepath.Rel(src, d); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
			return true
		}
	}
	return false
}

// candidates are the buildpacks of a build: the named ones, all of which must apply,
// or (auto) the built-ins, of which the first that applies runs.
type candidates struct {
	auto  bool
	packs []*buildpack
}

func (b *Builder) resolveAll(ctx context.Context, req Request) (candidates, error) {
	names := req.Buildpacks
	auto := len(names) == 0
	if auto {
		names = Builtins()
	}
	c := candidates{auto: auto}
	for _, name := range names {
		bp, err := b.resolve(ctx, name)
		if err != nil {
			return c, &BuildError{App: req.App, Buildpack: name, Err: fmt.Errorf("%w: %w", ErrBuildpack, err)}
		}
		c.packs = append(c.packs, bp)
	}
	return c, nil
}

// slugKey hashes a build's inputs: the source, the stack, the buildpacks with their
// versions (all built-ins when detection picks one: which one applies follows from
// the source) and the values of the config vars read at build time. Values are
// hashed, never stored, so secrets in BUILD_* stay out of the store.
func slugKey(digest, stack string, c candidates, config map[string]string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\nsource %s\nstack %s\nauto %t\n", keyFormat, digest, stack, c.auto)
	declared := map[string]bool{}
	for _, bp := range c.packs {
		fmt.Fprintf(h, "buildpack %q %s\n", bp.name, bp.version)
		for _, v := range bp.vars {
			declared[v] = true
		}
	}
	for _, name := range slices.Sorted(maps.Keys(config)) {
		if strings.HasPrefix(name, "BUILD_") || declared[name] {
			fmt.Fprintf(h, "config %q %q\n", name, config[name])
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// build runs the buildpacks over a scratch copy of the source and stores the slug.
func (b *Builder) build(ctx context.Context, req Request, srcDir, digest string, skip map[string]bool, c candidates, key string, out *tailWriter) (Slug, error) {
	lock := b.appLock(req.App)
	lock.Lock()
	defer lock.Unlock()

	fail := func(bp string, err error) (Slug, error) {
		return Slug{}, &BuildError{App: req.App, Buildpack: bp, Err: err}
	}
	ioFail := func(what string, err error) (Slug, error) {
		return Slug{}, fmt.Errorf("build slug for %s: %s: %w", req.App, what, err)
	}

	ctx, cancel := context.WithTimeout(ctx, b.timeLimit())
	defer cancel()
	// timedOut turns a step's failure into ErrTimeout when the time limit caused it.
	timedOut := func() bool { return errors.Is(ctx.Err(), context.DeadlineExceeded) }
	parentDone := func() error {
		if ctx.Err() != nil && !timedOut() {
			return fmt.Errorf("build slug for %s: %w", req.App, ctx.Err())
		}
		return nil
	}

	if err := os.MkdirAll(b.workDir(), 0o755); err != nil {
		return ioFail("work dir", err)
	}
	scratch, err := os.MkdirTemp(b.workDir(), "build-"+req.App+"-")
	if err != nil {
		return ioFail("work dir", err)
	}
	defer removeTree(scratch)
	// A runner in a container mounts these folders at the same paths: they must be
	// absolute (WorkDir and CacheDir may be relative).
	if scratch, err = filepath.Abs(scratch); err != nil {
		return ioFail("work dir", err)
	}
	buildDir := filepath.Join(scratch, "app")
	envDir := filepath.Join(scratch, "env")
	home := filepath.Join(scratch, "home")
	tmp := filepath.Join(scratch, "tmp")
	cacheDir, err := filepath.Abs(filepath.Join(b.cacheDir(), req.App))
	if err != nil {
		return ioFail("cache dir", err)
	}
	for _, d := range []string{envDir, home, tmp, cacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return ioFail("scratch dirs", err)
		}
	}
	if err := quietGoTelemetry(home); err != nil {
		return ioFail("scratch dirs", err)
	}
	out.printf("-----> Building %s on stack %s (source %s)", req.App, req.Stack, shortDigest(digest))
	if err := copyTree(srcDir, buildDir, skip); err != nil {
		return ioFail("copy source", err)
	}
	for name, value := range req.Config {
		if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
			return ioFail("write ENV_DIR", fmt.Errorf("config var name %q cannot be a file name", name))
		}
		if err := os.WriteFile(filepath.Join(envDir, name), []byte(value), 0o600); err != nil {
			return ioFail("write ENV_DIR", err)
		}
	}
	st := &steps{
		runner:   b.runner(),
		app:      req.App,
		stack:    req.Stack,
		env:      b.stepEnv(req.Stack, home, tmp),
		buildDir: buildDir,
		mounts:   []buildstep.Mount{{Path: scratch}, {Path: cacheDir}},
	}

	// Detection.
	var run []*buildpack
	labels := map[*buildpack]string{}
	for _, bp := range c.packs {
		ok, label, err := st.detect(ctx, bp, out)
		if err := parentDone(); err != nil {
			return Slug{}, err
		}
		if timedOut() {
			return Slug{}, b.timeoutErr(req.App, bp.name, out)
		}
		if err != nil {
			return fail(bp.name, fmt.Errorf("%w: bin/detect: %w", ErrBuildpack, err))
		}
		if !ok && !c.auto {
			return fail(bp.name, fmt.Errorf("%w: app not compatible with buildpack (bin/detect exited non-zero)", ErrNoBuildpack))
		}
		if ok {
			run = append(run, bp)
			labels[bp] = label
			if c.auto {
				break
			}
		}
	}
	if len(run) == 0 {
		return fail("", fmt.Errorf("%w: none of the built-in buildpacks (%s) applies; add a go.mod, a public/ folder or a Procfile, or name a buildpack",
			ErrNoBuildpack, strings.Join(Builtins(), ", ")))
	}

	// Download (on the host, with the network), compile (offline), then release,
	// buildpack by buildpack.
	processTypes := map[string]string{}
	var ran []string
	netEnv := b.netEnv(req.NetEnv)
	for _, bp := range run {
		out.printf("-----> %s app detected", labels[bp])
		step := "bin/download"
		err := st.download(ctx, bp, cacheDir, envDir, netEnv, out)
		if err == nil {
			step = "bin/compile"
			err = st.compile(ctx, bp, cacheDir, envDir, out)
		}
		if err := parentDone(); err != nil {
			return Slug{}, err
		}
		if timedOut() {
			return Slug{}, b.timeoutErr(req.App, bp.name, out)
		}
		if err != nil {
			return Slug{}, &BuildError{App: req.App, Buildpack: bp.name,
				Err: fmt.Errorf("%w: %s: %w", ErrCompile, step, err), Output: out.tail()}
		}
		types, err := st.release(ctx, bp, out)
		if err := parentDone(); err != nil {
			return Slug{}, err
		}
		if timedOut() {
			return Slug{}, b.timeoutErr(req.App, bp.name, out)
		}
		if err != nil {
			return Slug{}, &BuildError{App: req.App, Buildpack: bp.name, Err: fmt.Errorf("%w: %w", ErrCompile, err), Output: out.tail()}
		}
		// Later buildpacks' defaults win, as on Heroku where the last one's count.
		maps.Copy(processTypes, types)
		ran = append(ran, bp.name)
	}

	out.printf("-----> Discovering process types")
	defaults := slices.Sorted(maps.Keys(processTypes))
	if raw, err := os.ReadFile(filepath.Join(buildDir, "Procfile")); err == nil {
		declared := parseProcfile(raw)
		out.printf("       Procfile declares types     -> %s", typeList(slices.Sorted(maps.Keys(declared))))
		maps.Copy(processTypes, declared)
	}
	out.printf("       Default types for buildpack -> %s", typeList(defaults))

	out.printf("-----> Compressing...")
	if err := os.MkdirAll(b.Store.tmpDir(), 0o755); err != nil {
		return ioFail("store", err)
	}
	tarball, err := os.CreateTemp(b.Store.tmpDir(), "slug-*.tar.gz")
	if err != nil {
		return ioFail("store", err)
	}
	committed := false
	defer func() {
		if !committed {
			tarball.Close()
			os.Remove(tarball.Name())
		}
	}()
	size, err := pack(ctx, buildDir, tarball, b.sizeLimit())
	if errors.Is(err, errOverLimit) {
		return fail("", fmt.Errorf("%w: over the %s limit (compressed)", ErrTooLarge, FormatSize(b.sizeLimit())))
	}
	if err := parentDone(); err != nil {
		return Slug{}, err
	}
	if timedOut() {
		return Slug{}, b.timeoutErr(req.App, "", out)
	}
	if err != nil {
		return ioFail("pack slug", err)
	}
	if err := tarball.Sync(); err != nil {
		return ioFail("pack slug", err)
	}
	if err := tarball.Close(); err != nil {
		return ioFail("pack slug", err)
	}
	if err := os.Chmod(tarball.Name(), 0o644); err != nil {
		return ioFail("pack slug", err)
	}
	out.printf("       Done: %s", FormatSize(size))
	meta := slugMeta{Key: key, Size: size, ProcessTypes: processTypes, Buildpacks: ran, App: req.App, BuiltAt: time.Now().UTC()}
	if err := b.Store.commit(key, tarball.Name(), meta); err != nil {
		return ioFail("store slug", err)
	}
	committed = true
	out.printf("-----> Slug %s", key)
	return Slug{Key: key, Path: b.Store.Path(key), Size: size, ProcessTypes: processTypes, Buildpacks: ran}, nil
}

// netEnv is the network step's environment: the daemon's go env settings with the
// platform's over them, and the daemon's HOME, so that private modules fetched over
// git use the credentials the daemon has (~/.netrc, ~/.ssh, ~/.gitconfig).
func (b *Builder) netEnv(platform map[string]string) []string {
	values := map[string]string{}
	for _, kv := range b.tools.goNetEnv {
		name, value, _ := strings.Cut(kv, "=")
		values[name] = value
	}
	maps.Copy(values, platform)
	var env []string
	if home, err := os.UserHomeDir(); err == nil {
		env = append(env, "HOME="+home)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		env = append(env, "SSH_AUTH_SOCK="+sock)
	}
	for _, name := range slices.Sorted(maps.Keys(values)) {
		env = append(env, name+"="+values[name])
	}
	return env
}

// timeoutErr is the error of a build killed at its time limit.
func (b *Builder) timeoutErr(app, buildpack string, out *tailWriter) error {
	return &BuildError{App: app, Buildpack: buildpack,
		Err: fmt.Errorf("%w: over the %s limit; the build was killed", ErrTimeout, b.timeLimit()), Output: out.tail()}
}

func typeList(types []string) string {
	if len(types) == 0 {
		return "(none)"
	}
	return strings.Join(types, ", ")
}

// shortDigest shortens "sha256:<hex>" for narration.
func shortDigest(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// quietGoTelemetry turns Go's telemetry off in a step's HOME: otherwise every go
// command of a step leaves a detached child that writes under $HOME after the step
// ended, while the build's scratch folder is being removed (and a build should not
// upload anything anyway). The environment variable GOTELEMETRY is read-only to go;
// the mode file is what it reads.
func quietGoTelemetry(home string) error {
	dir := filepath.Join(home, ".config", "go", "telemetry")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "mode"), []byte("off\n"), 0o600)
}
