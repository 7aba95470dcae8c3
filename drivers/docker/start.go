package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/slugtar"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// ErrImageMissing is wrapped by Start and Run when the stack image is not in the
// engine; no registry is ever asked for it.
var ErrImageMissing = errors.New("stack image missing")

// profileD sources the slug's .profile.d scripts before the command, as Heroku does
// (buildpacks put PATH and other settings there).
const profileD = `for f in /app/.profile.d/*.sh; do [ -r "$f" ] && . "$f"; done; `

// Start creates the dyno's container on its app network with the slug at /app (its
// slug volume, made on first use, or a copy with Options.CopySlug), starts it and returns with the dyno starting; the Up event follows once a web dyno
// accepts connections on $PORT (others: at once). On any error nothing is left behind.
func (d *Driver) Start(ctx context.Context, spec drivers.DynoSpec) (drivers.Dyno, error) {
	if err := spec.ValidateForContainers(); err != nil {
		return drivers.Dyno{}, err
	}
	if err := d.beginCall(); err != nil {
		return drivers.Dyno{}, fmt.Errorf("start %s: %w", spec.Ref(), err)
	}
	defer d.wg.Done()
	// The spec names a stack ("manifold-24"); the container needs its image.
	spec.Stack = d.stackImage(spec.Stack)
	labels, err := d.dynoLabels(spec)
	if err != nil {
		return drivers.Dyno{}, err
	}
	id, name, err := d.createDynoContainer(ctx, spec, labels, nil)
	if err != nil {
		return drivers.Dyno{}, err
	}
	dy := d.newDyno(supervisor.Status{Dyno: drivers.Dyno{Spec: spec, State: drivers.StateDown}}, id, name)
	dy.volume = labels[LabelVolume]
	d.register(dy)
	run, err := dy.sup.Launch(ctx) // down on failure, which tells the readers of Events
	if err != nil {
		d.unregister(dy)
		d.mu.Lock()
		id = dy.id // a container gone meanwhile may have been replaced
		d.mu.Unlock()
		d.removeContainer(spec, id)
		d.releaseShared(ctx, spec.App, spec.Env, labels[LabelVolume])
		return drivers.Dyno{}, fmt.Errorf("start %s: %w", spec.Ref(), err)
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); dy.sup.Run(d.ctx, run) }()
	return dy.sup.Dyno(), nil
}

// startContainer starts (or restarts) the dyno's current container, logs it, records
// its address and follows its output.
func (d *Driver) startContainer(ctx context.Context, dy *dyno) error {
	d.mu.Lock()
	id := dy.id
	prevLog := dy.logDone
	d.mu.Unlock()
	if prevLog != nil {
		// The container's previous run has ended; let its log follower drain so the
		// next one resumes after its last line.
		select {
		case <-prevLog:
		case <-time.After(2 * time.Second):
		}
	}
	if err := d.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", short(id), err)
	}
	info, err := d.cli.ContainerInspect(ctx, id)
	if err != nil {
		return fmt.Errorf("inspect container %s: %w", short(id), err)
	}
	addr := ""
	if ep := info.NetworkSettings.Networks[networkName(dy.spec.App, dy.spec.Env)]; ep != nil && ep.IPAddress != "" {
		addr = ep.IPAddress + ":" + strconv.Itoa(containerPort)
	}
	d.mu.Lock()
	dy.addr = addr
	dy.logDone = d.followLogs(dy.spec, dy.spec.Name(), id, time.Time{})
	d.mu.Unlock()
	return nil
}

// createDynoContainer makes a dyno's (or one-off's) container: network, container,
// slug. It returns the container's id and name; on error it removes what it made.
func (d *Driver) createDynoContainer(ctx context.Context, spec drivers.DynoSpec, labels map[string]string, oneOff *drivers.OneOff) (string, string, error) {
	slugDst, err := d.slugDirs.dest(ctx, spec.SlugPath)
	if err != nil {
		return "", "", fmt.Errorf("start %s: slug %s: %w", spec.Ref(), spec.SlugPath, err)
	}
	stopTimeout := spec.StopTimeout
	if stopTimeout <= 0 {
		stopTimeout = defaultStopTimeout
	}
	stopSecs := int((stopTimeout + time.Second - 1) / time.Second)
	env := make([]string, 0, len(spec.Config)+5)
	for k, v := range spec.Config {
		if _, secret := spec.Secrets[k]; !secret {
			env = append(env, k+"="+v)
		}
	}
	env = append(env,
		"PORT="+strconv.Itoa(containerPort),
		"DYNO="+spec.Name(),
		"PS="+spec.Name(),
		"HOME=/app",
		// tini signals the whole process group, so SIGTERM reaches every process of
		// the dyno as on Heroku, not only the shell.
		"TINI_KILL_PROCESS_GROUP=1",
	)
	cfg := &container.Config{
		Image:       spec.Stack,
		Cmd:         []string{"/bin/sh", "-c", profileD + spec.Command},
		Entrypoint:  []string{},
		Env:         env,
		WorkingDir:  "/app",
		Labels:      labels,
		StopSignal:  "SIGTERM",
		StopTimeout: &stopSecs,
	}
	if oneOff != nil {
		cfg.AttachStdout, cfg.AttachStderr = true, true
		if oneOff.Stdin != nil {
			cfg.AttachStdin, cfg.OpenStdin, cfg.StdinOnce = true, true, true
		}
		cfg.Tty = oneOff.Terminal != nil
	}
	if len(spec.Secrets) > 0 {
		cfg.Cmd[2] = loadSecrets + cfg.Cmd[2]
	}
	init := true
	netName := networkName(spec.App, spec.Env)
	host := &container.HostConfig{
		NetworkMode: container.NetworkMode(netName),
		// docker-init (tini) as PID 1 forwards SIGTERM to the process and reaps
		// zombies; a shell as PID 1 would ignore SIGTERM and sit out the grace.
		Init: &init,
		Resources: container.Resources{
			Memory:     spec.MemoryBytes,
			MemorySwap: spec.MemoryBytes,
			CPUShares:  spec.CPUShares,
		},
		LogConfig: container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "2"}},
	}
	if spec.MemoryBytes == 0 {
		host.Resources.MemorySwap = 0
	}
	if oneOff != nil && oneOff.Terminal != nil {
		host.ConsoleSize = [2]uint{uint(oneOff.Terminal.Rows), uint(oneOff.Terminal.Cols)}
	}
	netCfg := &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{netName: {}}}

	// The slug: a read-only volume per slug made once (under its lock until the
	// container that mounts it exists, so it cannot be removed in between), or a copy
	// into this container after it is made.
	volName, unlockVolume := "", func() {}
	if !d.opts.CopySlug {
		if volName, err = d.slugVolumeName(spec); err != nil {
			return "", "", fmt.Errorf("start %s: slug %s: %w", spec.Ref(), spec.SlugPath, err)
		}
		unlockVolume = d.volumes.lock(volName)
		if err := d.ensureSlugVolume(ctx, spec, volName, slugDst); err != nil {
			unlockVolume()
			return "", "", fmt.Errorf("start %s: %w", spec.Ref(), err)
		}
		labels[LabelVolume] = volName
		host.Mounts = []mount.Mount{{Type: mount.TypeVolume, Source: volName, Target: "/app", ReadOnly: true}}
		host.Tmpfs = map[string]string{"/app/tmp": "rw,mode=1777,size=" + strconv.Itoa(appTmpBytes)}
	}

	unlock := d.networks.lock(netName)
	if err := d.ensureNetwork(ctx, spec.App, spec.Env); err != nil {
		unlock()
		unlockVolume()
		d.releaseShared(ctx, "", "", volName)
		return "", "", fmt.Errorf("start %s: %w", spec.Ref(), err)
	}
	var names []string
	if oneOff != nil {
		names = []string{containerName(spec), containerName(spec) + "." + randomSuffix()}
	} else {
		names = containerNames(spec)
	}
	var created container.CreateResponse
	var name string
	for _, name = range names {
		created, err = d.cli.ContainerCreate(ctx, cfg, host, netCfg, nil, name)
		if err == nil || !cerrdefs.IsConflict(err) {
			break
		}
	}
	unlock()
	unlockVolume()
	if err != nil {
		d.releaseShared(ctx, spec.App, spec.Env, volName)
		return "", "", fmt.Errorf("start %s: create container: %w", spec.Ref(), imageError(spec, err))
	}
	if d.opts.CopySlug {
		if err := d.copySlug(ctx, created.ID, spec.SlugPath, slugDst); err != nil {
			d.removeContainer(spec, created.ID)
			d.removeNetworkIfUnused(context.WithoutCancel(ctx), spec.App, spec.Env)
			return "", "", fmt.Errorf("start %s: copy slug %s into container: %w", spec.Ref(), spec.SlugPath, err)
		}
	}
	if len(spec.Secrets) > 0 {
		if err := d.copySecrets(ctx, created.ID, spec.Secrets); err != nil {
			d.removeContainer(spec, created.ID)
			d.removeNetworkIfUnused(context.WithoutCancel(ctx), spec.App, spec.Env)
			return "", "", fmt.Errorf("start %s: copy secrets into container: %w", spec.Ref(), err)
		}
	}
	return created.ID, name, nil
}

// imageError explains a missing stack image: no registry is ever asked for it.
func imageError(spec drivers.DynoSpec, err error) error {
	if cerrdefs.IsNotFound(err) && strings.Contains(strings.ToLower(err.Error()), "image") {
		return fmt.Errorf("%w: %q is not in the Docker Engine (no registry is used): run `make stack-image`, or name a local image as the stack: %v", ErrImageMissing, spec.Stack, err)
	}
	return err
}

// copySlug streams the gzipped slug tarball into the container; the engine unpacks it.
func (d *Driver) copySlug(ctx context.Context, id, slugPath, dst string) error {
	f, err := os.Open(slugPath)
	if err != nil {
		return err
	}
	defer f.Close()
	return d.cli.CopyToContainer(ctx, id, dst, f, container.CopyToContainerOptions{})
}

// removeContainer force-removes a container, logging failures; used to leave nothing
// behind after a failed start.
func (d *Driver) removeContainer(spec drivers.DynoSpec, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := forceRemove(ctx, d.cli, id); err != nil {
		d.log.Warn("remove container", "dyno", spec.Ref(), "container", id, "err", err)
	}
	d.logState.forget(id)
}

// slugDirs remembers where each slug tarball unpacks: a tarball of /app's contents
// (./Procfile, ./bin/web) goes to /app; one whose every entry is under app/ (Heroku's
// own slug layout, ./app/Procfile) goes to /. Reading the tarball once also rejects a
// corrupt slug before any container is made.
type slugDirs struct {
	mu    sync.Mutex
	known map[slugFile]string
}

type slugFile struct {
	path  string
	size  int64
	mtime time.Time
}

func newSlugDirs() *slugDirs { return &slugDirs{known: make(map[slugFile]string)} }

func (s *slugDirs) dest(ctx context.Context, slugPath string) (string, error) {
	st, err := os.Stat(slugPath)
	if err != nil {
		return "", err
	}
	key := slugFile{slugPath, st.Size(), st.ModTime()}
	s.mu.Lock()
	dst, ok := s.known[key]
	s.mu.Unlock()
	if ok {
		return dst, nil
	}
	dst, err = scanSlug(ctx, slugPath)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.known[key] = dst
	s.mu.Unlock()
	return dst, nil
}

// scanSlug reads the slug with slugtar.Scan, the same reader the process driver unpacks
// with, so both drivers agree on the layout and refuse the same corrupt or unsafe
// slugs; the engine then unpacks it.
func scanSlug(ctx context.Context, slugPath string) (string, error) {
	layout, err := slugtar.Scan(ctx, slugPath)
	if err != nil {
		return "", err
	}
	if layout.Entries == 0 {
		return "", errors.New("empty tarball")
	}
	if layout.UnderApp {
		return "/", nil
	}
	return "/app", nil
}
