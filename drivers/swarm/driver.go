package swarm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// Defaults of Options.
const (
	DefaultStack          = "manifold/stack:24"
	DefaultInstance       = "default"
	DefaultBootTimeout    = 60 * time.Second
	DefaultRelistInterval = time.Second
	DefaultRestartDelay   = time.Second
	DefaultSlugListen     = ":0"
	DefaultLogMaxBytes    = 10 << 20
	DefaultLogMaxFiles    = 3
)

// Options configure a Driver. The zero value of every field but Logs is usable, but
// the nodes must reach SlugURL (or SlugListen).
type Options struct {
	// Logs receives task output (source app) and platform lines (source heroku).
	Logs drivers.LogSink
	// Logger is the daemon's own log (slog.Default when nil).
	Logger *slog.Logger
	// Host is a swarm manager's engine (unix://…, tcp://…); empty means DOCKER_HOST and
	// the other DOCKER_* variables, then the default socket.
	Host string
	// DefaultStack is the image of dynos whose spec names no stack or manifold-24. It
	// must be in the manager's engine, which gives its ID; every node holding it
	// carries the node label NodeImageLabel(ID)=true.
	DefaultStack string
	// Instance is the manifold.instance label: a driver sees and touches only the
	// services of its own instance ("default").
	Instance string
	// BootTimeout is a web task's health check start period: how long it has to bind
	// $PORT (and answer its health check) before it counts as failing (60 s).
	BootTimeout time.Duration
	// RelistInterval is how often the driver lists services and tasks to tell state
	// changes as events (1 s).
	RelistInterval time.Duration
	// RestartDelay is Swarm's wait before restarting a failed task (1 s). Swarm has a
	// fixed delay, not Heroku's growing cool-off.
	RestartDelay time.Duration
	// MemoryReportInterval is how often a task samples its memory, and so the least
	// time between two R14 reports of it (20 s, Heroku's cadence; whole seconds).
	MemoryReportInterval time.Duration
	// MemoryHardLimit is the multiple of a dyno's quota at which the kernel kills it
	// (R15): 2, Heroku's 200% for standard dynos; 1 kills at the quota (no R14).
	MemoryHardLimit float64
	// SlugListen is where the slug server listens (":0": every interface, a port
	// picked). Give a fixed port in production: the URL is in every service, and a
	// task that restarts after the daemon did fetches from it again.
	SlugListen string
	// SlugURL is the slug server's base URL as the nodes reach it (http://host:port);
	// empty: http:// and SlugListen's address, or when that is every interface, this
	// machine's address on its route to the manager's swarm address.
	SlugURL string
	// RouterSources are the addresses (as prefixes) the router's connections
	// to the nodes come from: the guard on every node drops new connections to the
	// dynos' published ports from anywhere else. nil: the slug URL's host (the
	// address the nodes reach the daemon at); empty: only the node itself. See
	// docs/swarm.md, Reachability.
	RouterSources []netip.Prefix
	// NoGuard runs no guard (and removes one an earlier driver left), for operators
	// who firewall the nodes' ephemeral ports themselves.
	NoGuard bool
	// LogMaxBytes and LogMaxFiles bound each task's log on its node (Docker's
	// json-file max-size and max-file; 10 MiB, 3 files): what a node keeps while
	// the manager or the daemon is out of reach, the most the driver can deliver
	// late. Older lines are rotated away and reported as L10.
	LogMaxBytes int64
	LogMaxFiles int
	// RendezvousURL is where one-offs connect out to for their stdin, output and
	// terminal (http://host:port, plain: the task speaks it with nc); empty: SlugURL,
	// whose listener serves it.
	RendezvousURL string
	// RendezvousTimeout is how long a one-off's running task has to connect to the
	// rendezvous endpoint before the one-off fails and its service is removed (60 s).
	RendezvousTimeout time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.DefaultStack == "" {
		o.DefaultStack = DefaultStack
	}
	if o.Instance == "" {
		o.Instance = DefaultInstance
	}
	if o.BootTimeout <= 0 {
		o.BootTimeout = DefaultBootTimeout
	}
	if o.RelistInterval <= 0 {
		o.RelistInterval = DefaultRelistInterval
	}
	if o.RestartDelay <= 0 {
		o.RestartDelay = DefaultRestartDelay
	}
	if o.MemoryReportInterval < time.Second {
		o.MemoryReportInterval = supervisor.DefaultMemoryReportInterval
	}
	if o.MemoryHardLimit < 1 {
		o.MemoryHardLimit = supervisor.DefaultMemoryHardLimit
	}
	if o.SlugListen == "" {
		o.SlugListen = DefaultSlugListen
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = DefaultLogMaxBytes
	}
	if o.LogMaxFiles <= 0 {
		o.LogMaxFiles = DefaultLogMaxFiles
	}
	if o.RendezvousTimeout <= 0 {
		o.RendezvousTimeout = DefaultRendezvousTimeout
	}
}

// ErrNotManager is wrapped by New's error when the engine is not a swarm manager.
var ErrNotManager = errors.New("not a swarm manager")

// ErrClosed is wrapped by the error of a call made after Close, and of a Run that
// Close ended.
var ErrClosed = errors.New("swarm driver closed")

// ErrUnknownDyno is returned by Stop for an id that is no dyno of this driver.
var ErrUnknownDyno = errors.New("no such dyno")

// Driver runs dynos as tasks of Swarm services, one service per app, environment and
// process type. It is safe for concurrent use.
type Driver struct {
	opts  Options
	cli   *client.Client
	log   *slog.Logger
	slugs *slugServer
	// appLogs is Options.Logs as given: opts.Logs takes the memory samples out
	// first (markerSink), appLogs gets the marker lines refused late.
	appLogs drivers.LogSink
	// rendezvous hands one-offs' connections to their Run calls.
	rendezvous *rendezvous

	// ctx is cancelled by Close; it owns every goroutine, which wg counts.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events *supervisor.Queue
	// relist wakes the watch loop for a listing now (capacity 1: wakes fold);
	// eventRelists counts the listings it made so, eventsSeen the manager's events
	// that asked for one.
	relist       chan struct{}
	eventRelists atomic.Int64
	eventsSeen   atomic.Int64

	// guard is what awaitGuard knows of the guard, under mu; guardOps makes
	// awaitGuard calls take turns.
	guard    guardState
	guardOps sync.Mutex
	// ops serialises the read-modify-write of services (Start, Stop).
	ops sync.Mutex

	mu   sync.Mutex
	last map[string]drivers.Dyno // dynos of the last watch, by ID
	// updateStates is each service's update state at the last listing.
	updateStates map[string]swarm.UpdateState
	// nodeReady is each node's readiness at the last listing.
	nodeReady map[string]bool
	// nonces are the memory samplers' nonces, by task ID (memory.go).
	nonces map[string]taskNonce
	// taskNames names the dyno of every task seen, for its log lines.
	taskNames map[string]taskName
	// current maps the task each dyno of the last listing runs to its dyno ID, ran
	// every listed task that a dyno ran; stops are the dynos whose tasks Swarm is
	// stopping, by dyno ID (dynomgr.go).
	current map[string]string
	ran     map[string]string
	stops   map[string]*stopping
	follow  map[string]context.CancelFunc
	runSeq  int
	closed  bool
}

var _ drivers.Driver = (*Driver)(nil)

// New connects to a swarm manager, starts the slug server, adopts the services of
// opts.Instance (nothing that runs is touched), sets or adopts the instance's
// guard (see RouterSources) and starts watching.
func New(ctx context.Context, opts Options) (*Driver, error) {
	opts.setDefaults()
	if opts.Logs == nil {
		return nil, errors.New("swarm driver: Options.Logs is nil")
	}
	clientOpts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if opts.Host != "" {
		clientOpts = append(clientOpts, client.WithHost(opts.Host))
	}
	cli, err := client.NewClientWithOpts(clientOpts...)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	infoCtx, cancelInfo := context.WithTimeout(ctx, 10*time.Second)
	info, err := cli.Info(infoCtx)
	cancelInfo()
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("swarm driver: Docker Engine not reachable at %s: %w", cli.DaemonHost(), err)
	}
	if !info.Swarm.ControlAvailable {
		_ = cli.Close()
		return nil, notManager(cli.DaemonHost(), info.Swarm)
	}
	listener, err := net.Listen("tcp", opts.SlugListen)
	if err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("swarm driver: slug server: %w", err)
	}
	if opts.SlugURL == "" {
		if opts.SlugURL, err = slugBaseURL(listener.Addr(), info.Swarm.NodeAddr); err != nil {
			_ = listener.Close()
			_ = cli.Close()
			return nil, fmt.Errorf("swarm driver: %w", err)
		}
	}
	if opts.RendezvousURL == "" {
		opts.RendezvousURL = opts.SlugURL
	}
	dctx, cancel := context.WithCancel(context.Background())
	log := opts.Logger.With("driver", "swarm", "instance", opts.Instance)
	rv := newRendezvous(log)
	d := &Driver{
		opts:         opts,
		cli:          cli,
		log:          log,
		slugs:        newSlugServer(listener, rv),
		rendezvous:   rv,
		ctx:          dctx,
		cancel:       cancel,
		events:       supervisor.NewQueue(opts.Logger),
		relist:       make(chan struct{}, 1),
		follow:       map[string]context.CancelFunc{},
		taskNames:    map[string]taskName{},
		stops:        map[string]*stopping{},
		ran:          map[string]string{},
		nonces:       map[string]taskNonce{},
		nodeReady:    map[string]bool{},
		updateStates: map[string]swarm.UpdateState{},
	}
	d.log.Info("slug server", "listen", listener.Addr().String(), "url", opts.SlugURL)
	// The boot script's memory samples are taken out of the tasks' lines.
	d.appLogs = opts.Logs
	d.opts.Logs = markerSink{next: opts.Logs, d: d}
	if err := d.adopt(ctx); err != nil {
		cancel()
		_ = d.slugs.close()
		_ = cli.Close()
		return nil, err
	}
	if err := d.ensureGuard(ctx); err != nil {
		cancel()
		_ = d.slugs.close()
		_ = cli.Close()
		return nil, err
	}
	d.wg.Add(5)
	go func() { defer d.wg.Done(); d.events.Run(dctx) }()
	go func() { defer d.wg.Done(); d.slugs.serve(d.log) }()
	go func() { defer d.wg.Done(); d.watch(dctx) }()
	go func() { defer d.wg.Done(); d.followEvents(dctx) }()
	go func() { defer d.wg.Done(); d.followStops(dctx) }()
	return d, nil
}

// Events delivers dyno state changes until Close.
func (d *Driver) Events() <-chan drivers.Event { return d.events.Out() }

// Close stops watching, following logs and serving slugs; the services run on.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	err := d.slugs.close()
	d.wg.Wait()
	return errors.Join(err, d.cli.Close())
}

// beginCall counts a call in wg, or fails once the driver closed.
func (d *Driver) beginCall() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.wg.Add(1)
	return nil
}

// notManager says what to do about an engine that is no swarm manager: a worker
// names its managers (`docker swarm init` there would fail: it is in a swarm), any
// other engine is told to start one.
func notManager(host string, info swarm.Info) error {
	if info.LocalNodeState == swarm.LocalNodeStateActive {
		managers := make([]string, 0, len(info.RemoteManagers))
		for _, m := range info.RemoteManagers {
			managers = append(managers, m.Addr)
		}
		return fmt.Errorf("swarm driver: the Docker Engine at %s is %w but a worker of a swarm: point DOCKER_HOST at a manager's engine (the managers' swarm addresses: %s), or promote this node with `docker node promote` on a manager",
			host, ErrNotManager, strings.Join(managers, ", "))
	}
	return fmt.Errorf("swarm driver: the Docker Engine at %s is %w (swarm state %q): run `docker swarm init` there, or point DOCKER_HOST at a manager",
		host, ErrNotManager, info.LocalNodeState)
}

// stackImage is the image ID of the stack a spec names, as the manager's engine has it.
func (d *Driver) stackImage(ctx context.Context, stack string) (string, error) {
	image := stack
	if image == "" || image == "manifold-24" {
		image = d.opts.DefaultStack
	}
	inspect, err := d.cli.ImageInspect(ctx, image)
	if err != nil {
		return "", fmt.Errorf("stack image %s on the manager (load it into every node with docker save | docker load, then docker node update --label-add %s=true): %w",
			image, NodeImageLabel("<id>"), err)
	}
	return inspect.ID, nil
}
