package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// Defaults of Options.
const (
	DefaultStack          = "manifold/stack:24"
	DefaultBootTimeout    = 60 * time.Second
	DefaultRelistInterval = 10 * time.Second
	DefaultInstance       = "default"
	defaultStopTimeout    = 30 * time.Second
)

// Options configure a Driver. The zero value of every field but Logs is usable.
type Options struct {
	// Logs receives dyno output (source app) and platform lines (source heroku).
	Logs drivers.LogSink
	// Logger is the daemon's own log (slog.Default when nil).
	Logger *slog.Logger
	// Host is the engine's address (unix:///var/run/docker.sock, tcp://…); empty means
	// DOCKER_HOST and the other DOCKER_* variables, then the default socket.
	Host string
	// DefaultStack is the image of dynos whose spec names no stack or the default
	// stack manifold-24 (manifold/stack:24).
	DefaultStack string
	// BootTimeout is how long a web dyno has to accept a TCP connection on $PORT (and
	// answer its health check) before R10 (60 s).
	BootTimeout time.Duration
	// RelistInterval is how often the driver lists its containers to catch what the
	// event stream dropped (10 s).
	RelistInterval time.Duration
	// Instance is the manifold.instance label value: a driver sees and touches only
	// containers and networks with its own value, so several daemons (and tests) can
	// share one engine ("default").
	Instance string
	// StateDir, when set, holds docker-logs.json: the timestamp of the last output line
	// published per container, so that after a restart the driver resumes each
	// container's log where it stopped, without duplicates. Without it, adopted
	// containers' logs resume from the moment of adoption.
	StateDir string
	// CopySlug copies the slug into every dyno's own container, giving each a
	// writable /app as on Heroku, at the cost of a copy per start (50-80 ms more p50
	// for a small slug, 350 ms more for 20 MB). By default the slug is unpacked once into a
	// volume per slug, mounted read-only at /app with a writable tmpfs at /app/tmp:
	// faster, see docs/docker.md for the figures.
	CopySlug bool
	// GoRoot is the Go toolchain mounted read-only at /usr/local/go in build
	// containers (BuildRunner) whose stack has no go; empty: `go env GOROOT`.
	GoRoot string
	// Cooloff is the wait before the n-th consecutive crash restart (drivers.Cooloff);
	// tests shorten it.
	Cooloff func(n int) time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DefaultStack == "" {
		o.DefaultStack = DefaultStack
	}
	if o.BootTimeout <= 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.RelistInterval <= 0 {
		o.RelistInterval = DefaultRelistInterval
	}
	if o.Instance == "" {
		o.Instance = DefaultInstance
	}
	if o.Cooloff == nil {
		o.Cooloff = drivers.Cooloff
	}
}

// ErrEngineUnreachable is wrapped by New's error when the engine does not answer; the
// caller retries later.
var ErrEngineUnreachable = errors.New("docker engine unreachable")

// unreachableError says where the engine was looked for; it is ErrEngineUnreachable.
type unreachableError struct {
	host string
	err  error
}

func (e *unreachableError) Error() string {
	return "Docker Engine not reachable at " + e.host + ": " + e.err.Error()
}

func (e *unreachableError) Unwrap() error { return e.err }

func (e *unreachableError) Is(target error) bool { return target == ErrEngineUnreachable }

// ErrUnknownDyno is returned by Stop for an id that is neither a dyno nor a container
// of this driver's instance.
var ErrUnknownDyno = errors.New("no such dyno")

// Driver runs dynos as Docker containers. It is safe for concurrent use.
type Driver struct {
	opts Options
	cli  *client.Client
	log  *slog.Logger

	// ctx is cancelled by Close; it owns every goroutine, which wg counts.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	dynos   map[string]*dyno // by current container id
	aliases map[string]*dyno // container ids of dynos since replaced
	runSeq  int
	closed  bool

	networks *networks
	volumes  *networks // the same locking and caching, for slug volumes
	slugDirs *slugDirs
	logState *logState
	events   *supervisor.Queue
}

var _ drivers.Driver = (*Driver)(nil)

// New connects to the engine (API version negotiated, so a 20.10 engine speaking 1.41
// works), adopts the containers of opts.Instance left by an earlier daemon (none is
// restarted; crashed ones are restarted after their cool-off) and starts watching the
// engine's events. When the engine does not answer, the error wraps
// ErrEngineUnreachable and says where it looked.
func New(ctx context.Context, opts Options) (*Driver, error) {
	opts.setDefaults()
	if opts.Logs == nil {
		return nil, errors.New("docker driver: Options.Logs is nil")
	}
	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	cli, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	pingCtx, cancelPing := context.WithTimeout(ctx, 10*time.Second)
	_, err = cli.Ping(pingCtx)
	cancelPing()
	if err != nil {
		_ = cli.Close()
		return nil, &unreachableError{host: cli.DaemonHost(), err: err}
	}
	state, err := loadLogState(opts.StateDir)
	if err != nil {
		_ = cli.Close()
		return nil, err
	}
	dctx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		opts:     opts,
		cli:      cli,
		log:      opts.Logger.With("driver", "docker", "instance", opts.Instance),
		ctx:      dctx,
		cancel:   cancel,
		dynos:    make(map[string]*dyno),
		aliases:  make(map[string]*dyno),
		networks: newNetworks(),
		volumes:  newNetworks(),
		slugDirs: newSlugDirs(),
		logState: state,
		events:   supervisor.NewQueue(opts.Logger),
	}
	if _, err := cli.ImageInspect(ctx, opts.DefaultStack); err != nil {
		d.log.Warn("stack image missing: run `make stack-image`", "image", opts.DefaultStack, "err", err)
	}
	if err := d.adopt(ctx); err != nil {
		cancel()
		_ = cli.Close()
		return nil, err
	}
	d.wg.Add(3)
	go func() { defer d.wg.Done(); d.events.Run(dctx) }()
	go func() { defer d.wg.Done(); d.watchEvents(dctx) }()
	go func() { defer d.wg.Done(); d.logState.flushLoop(dctx, d.log) }()
	return d, nil
}

// Events delivers dyno state changes until Close.
func (d *Driver) Events() <-chan drivers.Event { return d.events.Out() }

// Close stops watching the engine and following logs; running containers keep running
// and a new Driver adopts them. Close waits for the driver's goroutines.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	err := d.logState.flush()
	return errors.Join(err, d.cli.Close())
}

// instanceFilter selects the containers (and networks) of this driver's instance.
func (d *Driver) instanceFilter(extra ...filters.KeyValuePair) filters.Args {
	return filters.NewArgs(append([]filters.KeyValuePair{filters.Arg("label", LabelInstance+"="+d.opts.Instance)}, extra...)...)
}

// List returns every dyno of this instance: the containers labelled with it (from
// their labels, so containers the driver did not start are reported too and the
// reconciler can stop them) and dynos being restarted or replaced right now. One-off
// containers are not listed.
func (d *Driver) List(ctx context.Context) ([]drivers.Dyno, error) {
	containers, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: d.instanceFilter()})
	if err != nil {
		return nil, fmt.Errorf("list containers of instance %s: %w", d.opts.Instance, err)
	}
	var out []drivers.Dyno
	seen := make(map[*dyno]bool)
	for _, c := range containers {
		if c.Labels[LabelOneOff] != "" {
			continue
		}
		if dy := d.lookupCurrent(c.ID); dy != nil {
			seen[dy] = true
			out = append(out, dy.sup.Dyno())
			continue
		}
		spec, err := specFromLabels(c.Labels)
		if err != nil {
			d.log.Warn("container with a bad spec label", "container", c.ID, "err", err)
			continue
		}
		state := drivers.StateCrashed
		switch c.State {
		case "running":
			state = drivers.StateUp
		case "created", "restarting":
			state = drivers.StateStarting
		}
		dyno := drivers.Dyno{ID: c.ID, Spec: spec, Name: spec.Name(), State: state, StartedAt: time.Unix(c.Created, 0)}
		if spec.Type == "web" && c.NetworkSettings != nil {
			if ep := c.NetworkSettings.Networks[networkName(spec.App, spec.Env)]; ep != nil && ep.IPAddress != "" {
				dyno.Addr = ep.IPAddress + ":" + strconv.Itoa(containerPort)
			}
		}
		out = append(out, dyno)
	}
	d.mu.Lock()
	var others []*dyno
	for _, dy := range d.dynos {
		if !seen[dy] {
			others = append(others, dy)
		}
	}
	d.mu.Unlock()
	for _, dy := range others {
		out = append(out, dy.sup.Dyno())
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Spec, out[j].Spec
		if a.App != b.App {
			return a.App < b.App
		}
		if a.Env != b.Env {
			return a.Env < b.Env
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		if a.Index != b.Index {
			return a.Index < b.Index
		}
		return a.Release < b.Release
	})
	return out, nil
}

// lookupCurrent finds the dyno whose current container is id.
func (d *Driver) lookupCurrent(id string) *dyno {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.dynos[id]
}

// ErrClosed is returned by calls after Close.
var ErrClosed = errors.New("docker driver closed")

// beginCall counts a Start or Run so that Close waits for it; it fails after Close.
func (d *Driver) beginCall() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.wg.Add(1)
	return nil
}

// platform publishes a platform line (source heroku) of a dyno.
func (d *Driver) platform(spec drivers.DynoSpec, dynoName, text string) {
	d.opts.Logs.Publish(logs.Line{
		Time:   time.Now().UTC(),
		App:    spec.App,
		Env:    spec.Env,
		Source: logs.SourceHeroku,
		Dyno:   dynoName,
		Text:   text,
	})
}
