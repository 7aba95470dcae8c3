package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
	"github.com/manifold-paas/manifold/drivers/buildstep"
)

// DefaultStackName is the spec's name of the default stack (spec.Desired.DefaultStack
// when the spec names none); its image is DefaultStack.
const DefaultStackName = "manifold-24"

// LabelBuild marks a build container; its value is the app being built. Build
// containers also carry LabelOneOff=build, so List never reports them and a daemon
// that starts removes those an earlier one left.
const LabelBuild = "manifold.build"

// goMount is where a build container without its own Go finds the host's toolchain.
const goMount = "/usr/local/go"

// StackImage maps a spec's stack name to the image dynos and builds of that stack run
// on: "" and "manifold-24" are the locally built DefaultStack (manifold/stack:24), and
// any other name is itself an image of the engine (a user's heroku/heroku:24).
func StackImage(stack string) string {
	if stack == "" || stack == DefaultStackName {
		return DefaultStack
	}
	return stack
}

// stackImage is StackImage with the driver's own default stack image.
func (d *Driver) stackImage(stack string) string {
	if stack == "" || stack == DefaultStackName {
		return d.opts.DefaultStack
	}
	return stack
}

// BuildRunner runs buildpack steps (buildstep.Cmd) in build containers of the app's
// stack image: one container per step, with the step's host folders bind-mounted at
// the same paths, no network (builds are offline), the host's Go toolchain mounted
// read-only at /usr/local/go when the stack has no go, removed after the step. Make
// it with Driver.BuildRunner; it is safe for concurrent use and stops working when the
// driver is closed.
type BuildRunner struct {
	d *Driver

	mu     sync.Mutex
	stacks map[string]*stackFacts // by image name

	goRootOnce sync.Once
	goRoot     string

	userOnce sync.Once
	user     string
}

// stackFacts is what a build needs to know of a stack image, learnt once per image id.
type stackFacts struct {
	id    string
	path  string // the image's PATH
	hasGo bool
}

// BuildRunner returns the runner of buildpack steps in containers of this driver's
// engine: set it as slug.Builder.Runner.
func (d *Driver) BuildRunner() *BuildRunner {
	return &BuildRunner{d: d, stacks: make(map[string]*stackFacts)}
}

// Run runs one buildpack step in a new build container of cmd.Stack's image and
// removes it. A non-zero exit is a *buildstep.ExitError; when ctx ends (the build's time
// limit, a cancelled deploy) or the driver closes, the container is killed.
func (r *BuildRunner) Run(ctx context.Context, cmd buildstep.Cmd) error {
	d := r.d
	step := filepath.Base(filepath.Dir(filepath.Dir(cmd.Path))) + "/bin/" + filepath.Base(cmd.Path)
	fail := func(err error) error { return fmt.Errorf("build %s: %s in a container: %w", cmd.App, step, err) }
	if err := d.beginCall(); err != nil {
		return fail(err)
	}
	defer d.wg.Done()
	// Close of the driver ends the step too: Close waits for it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.ctx, cancel)
	defer stop()

	image := d.stackImage(cmd.Stack)
	stack, err := r.stack(ctx, cmd.App, image)
	if err != nil {
		return fail(err)
	}
	goRoot := ""
	if !stack.hasGo {
		goRoot = r.hostGoRoot()
	}
	env, mounts, err := buildMounts(cmd, stack.path, goRoot)
	if err != nil {
		return fail(err)
	}
	code, err := r.run(ctx, cmd, image, append([]string{cmd.Path}, cmd.Args...), env, mounts)
	if err != nil {
		return fail(err)
	}
	if code != 0 {
		return &buildstep.ExitError{Code: code}
	}
	return nil
}

// buildMounts returns a step's container environment and bind mounts: every folder of
// cmd.Mounts at its own path; the folders of an absolute GOCACHE and GOMODCACHE in
// cmd.Env (a host sharing its Go caches between apps, slug.Builder.Env); the host's
// GOROOT (when goRoot is set) read-only at /usr/local/go. PATH becomes the image's, with
// /usr/local/go/bin when the toolchain is mounted.
func buildMounts(cmd buildstep.Cmd, imagePath, goRoot string) ([]string, []mount.Mount, error) {
	var mounts []mount.Mount
	add := func(path string, readOnly bool) error {
		if !filepath.IsAbs(path) {
			return fmt.Errorf("mount %q: not an absolute path", path)
		}
		path = filepath.Clean(path)
		for i, m := range mounts {
			if m.Source == path {
				mounts[i].ReadOnly = m.ReadOnly && readOnly
				return nil
			}
		}
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: path, Target: path, ReadOnly: readOnly})
		return nil
	}
	for _, m := range cmd.Mounts {
		if err := add(m.Path, m.ReadOnly); err != nil {
			return nil, nil, err
		}
	}
	path := imagePath
	if path == "" {
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
	}
	if goRoot != "" {
		mounts = append(mounts, mount.Mount{Type: mount.TypeBind, Source: goRoot, Target: goMount, ReadOnly: true})
		path += ":" + goMount + "/bin"
	}
	env := make([]string, 0, len(cmd.Env)+1)
	for _, kv := range cmd.Env {
		name, value, _ := strings.Cut(kv, "=")
		switch name {
		case "PATH":
			continue // the host's PATH means nothing in the image
		case "GOCACHE", "GOMODCACHE":
			if filepath.IsAbs(value) {
				// The host's shared Go build and module caches: a container of the same
				// toolchain reuses them (both are content-addressed); the module cache
				// is what the host's download step filled for the offline compile.
				if err := os.MkdirAll(value, 0o755); err != nil {
					return nil, nil, fmt.Errorf("%s %s: %w", name, value, err)
				}
				if err := add(value, false); err != nil {
					return nil, nil, err
				}
			}
		}
		env = append(env, kv)
	}
	env = append(env, "PATH="+path)
	return env, mounts, nil
}

// run runs argv in a new labelled build container of image with no network, streams
// its output to cmd's writers, and returns its exit status. The container is removed
// whatever happens; when ctx ends it is killed first.
func (r *BuildRunner) run(ctx context.Context, cmd buildstep.Cmd, image string, argv, env []string, mounts []mount.Mount) (int, error) {
	d := r.d
	init := true
	created, err := d.cli.ContainerCreate(ctx,
		&container.Config{
			Image:        image,
			Cmd:          argv,
			Entrypoint:   []string{},
			Env:          env,
			WorkingDir:   cmd.Dir,
			User:         r.stepUser(ctx),
			AttachStdout: true,
			AttachStderr: true,
			Labels: map[string]string{
				LabelInstance: d.opts.Instance,
				LabelOneOff:   "build",
				LabelBuild:    cmd.App,
				LabelApp:      cmd.App,
			},
		},
		&container.HostConfig{
			// Builds are offline: dependencies are vendored or in the cache.
			NetworkMode: "none",
			Mounts:      mounts,
			// tini reaps what the script leaves and dies with it.
			Init: &init,
			// The output is streamed through the attach; nothing to keep on disk.
			LogConfig: container.LogConfig{Type: "none"},
		}, nil, nil, "")
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return -1, fmt.Errorf("%w: %q is not in the Docker Engine (no registry is used): run `make stack-image`, or name a local image as the stack: %v", ErrImageMissing, image, err)
		}
		return -1, fmt.Errorf("create build container: %w", err)
	}
	defer func() {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := forceRemove(rmCtx, d.cli, created.ID); err != nil {
			d.log.Warn("remove build container", "app", cmd.App, "container", created.ID, "err", err)
		}
	}()

	attach, err := d.cli.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		return -1, fmt.Errorf("attach build container %s: %w", short(created.ID), err)
	}
	outputDone := make(chan struct{})
	go func() {
		defer close(outputDone)
		// Whole lines, so that stdout and stderr going to one build log do not cut
		// each other's lines where the engine's frames happen to end.
		stdout, stderr := &buildLines{out: cmd.Stdout}, &buildLines{out: cmd.Stderr}
		_, _ = stdcopy.StdCopy(stdout, stderr, attach.Reader)
		stdout.flush()
		stderr.flush()
	}()
	// The output goroutine writes to cmd's writers: it must be done before Run returns.
	defer func() {
		attach.Close()
		<-outputDone
	}()

	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		return -1, fmt.Errorf("start build container %s: %w", short(created.ID), err)
	}
	waitCh, errCh := d.cli.ContainerWait(ctx, created.ID, container.WaitConditionNotRunning)
	var status int
	select {
	case res := <-waitCh:
		if res.Error != nil {
			return -1, fmt.Errorf("wait for build container %s: %s", short(created.ID), res.Error.Message)
		}
		status = int(res.StatusCode)
	case err := <-errCh:
		if ctx.Err() != nil {
			killCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if kerr := d.cli.ContainerKill(killCtx, created.ID, "SIGKILL"); kerr != nil && !cerrdefs.IsNotFound(kerr) && !cerrdefs.IsConflict(kerr) {
				d.log.Warn("kill build container", "app", cmd.App, "container", created.ID, "err", kerr)
			}
			cancel()
			return -1, fmt.Errorf("killed: %w", ctx.Err())
		}
		return -1, fmt.Errorf("wait for build container %s: %w", short(created.ID), err)
	}
	// The stream ends once the engine has sent all the step wrote.
	select {
	case <-outputDone:
	case <-time.After(5 * time.Second):
		d.log.Warn("build container output did not end after exit", "app", cmd.App, "container", created.ID)
	case <-ctx.Done():
	}
	return status, nil
}

// stack returns what a build needs to know of image: its PATH and whether it has its
// own go, probed once per image id with a container running `command -v go`.
func (r *BuildRunner) stack(ctx context.Context, app, image string) (*stackFacts, error) {
	info, err := r.d.cli.ImageInspect(ctx, image)
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return nil, fmt.Errorf("%w: %q is not in the Docker Engine (no registry is used): run `make stack-image`, or name a local image as the stack", ErrImageMissing, image)
		}
		return nil, fmt.Errorf("inspect stack image %s: %w", image, err)
	}
	r.mu.Lock()
	facts := r.stacks[image]
	r.mu.Unlock()
	if facts != nil && facts.id == info.ID {
		return facts, nil
	}
	facts = &stackFacts{id: info.ID}
	if info.Config != nil {
		for _, kv := range info.Config.Env {
			if p, ok := strings.CutPrefix(kv, "PATH="); ok {
				facts.path = p
			}
		}
	}
	var probeOut strings.Builder
	probe := buildstep.Cmd{App: app, Dir: "/", Stdout: &probeOut, Stderr: &probeOut}
	env := []string{"PATH=" + facts.path}
	if facts.path == "" {
		env = nil
	}
	code, err := r.run(ctx, probe, image, []string{"/bin/sh", "-c", "command -v go"}, env, nil)
	if err != nil {
		return nil, fmt.Errorf("probe stack image %s for go (it needs /bin/sh): %w", image, err)
	}
	facts.hasGo = code == 0
	r.d.log.Debug("probed stack image", "image", image, "has_go", facts.hasGo, "go", strings.TrimSpace(probeOut.String()))
	r.mu.Lock()
	r.stacks[image] = facts
	r.mu.Unlock()
	return facts, nil
}

// stepUser is the user steps run as: the stack's own (root) when the daemon is root
// or the engine is rootless (its root is the daemon's user), else the daemon's uid and
// gid, so that what a step writes into the mounted folders stays the daemon's to
// remove.
func (r *BuildRunner) stepUser(ctx context.Context) string {
	r.userOnce.Do(func() {
		uid, gid := os.Getuid(), os.Getgid()
		if uid == 0 {
			return
		}
		// Learnt once for every later step: the first caller's cancel must not decide.
		infoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		info, err := r.d.cli.Info(infoCtx)
		if err != nil {
			r.d.log.Warn("engine info for the build user; steps run as the stack's user", "err", err)
			return
		}
		for _, opt := range info.SecurityOptions {
			if strings.Contains(opt, "name=rootless") {
				return
			}
		}
		r.user = fmt.Sprintf("%d:%d", uid, gid)
	})
	return r.user
}

// hostGoRoot is the folder mounted at /usr/local/go in stacks without go:
// Options.GoRoot, else `go env GOROOT` of the daemon's PATH, with symlinks resolved
// (a bind mount of a symlink would mount its target's parent's view). Empty when the
// host has no Go either: the go buildpack then says go is missing.
func (r *BuildRunner) hostGoRoot() string {
	r.goRootOnce.Do(func() {
		root := r.d.opts.GoRoot
		if root == "" {
			out, err := exec.Command("go", "env", "GOROOT").Output()
			if err != nil {
				r.d.log.Warn("no Go toolchain on the host to mount into build containers", "err", err)
				return
			}
			root = strings.TrimSpace(string(out))
		}
		resolved, err := filepath.EvalSymlinks(root)
		if err != nil {
			r.d.log.Warn("Go toolchain to mount into build containers", "goroot", root, "err", err)
			return
		}
		r.goRoot = resolved
	})
	return r.goRoot
}

// isBuildContainer reports whether labels are a build container's.
func isBuildContainer(labels map[string]string) bool {
	return labels[LabelOneOff] == "build"
}

// buildLines passes on whole lines; a line longer than maxBuildPartialLine (a progress bar
// without newlines) goes on in pieces. Not safe for concurrent use: one per stream.
type buildLines struct {
	out     io.Writer
	partial []byte
}

const maxBuildPartialLine = 4096

func (w *buildLines) Write(p []byte) (int, error) {
	w.partial = append(w.partial, p...)
	if i := bytes.LastIndexByte(w.partial, '\n'); i >= 0 {
		if _, err := w.out.Write(w.partial[:i+1]); err != nil {
			return 0, err
		}
		w.partial = append(w.partial[:0], w.partial[i+1:]...)
	}
	if len(w.partial) > maxBuildPartialLine {
		w.flush()
	}
	return len(p), nil
}

// flush passes on the unfinished line.
func (w *buildLines) flush() {
	if len(w.partial) > 0 {
		_, _ = w.out.Write(w.partial)
		w.partial = w.partial[:0]
	}
}
