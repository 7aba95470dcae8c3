package process

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// Defaults of Options.
const (
	DefaultBootTimeout  = supervisor.DefaultBootTimeout
	DefaultStopTimeout  = supervisor.DefaultStopTimeout
	DefaultStableAfter  = supervisor.DefaultStableAfter
	DefaultMaxLogBytes  = 16 << 20
	DefaultMaxLineBytes = 64 << 10
)

// logPollInterval is the longest a line written by a dyno waits to be published: a
// busy dyno's follower reads at most once per interval (a line after a quiet spell
// goes at once), and without inotify followers are polled at it (outputWatch).
const logPollInterval = 50 * time.Millisecond

// statePersistInterval is how often a moving log offset is written to the state file.
const statePersistInterval = time.Second

// Options configure a Driver. StateDir is required; the rest have defaults.
type Options struct {
	// StateDir holds a state file and an output file per dyno (.manifold/dynos).
	StateDir string
	// SlugDir caches unpacked slugs, one directory per slug key, shared by the dynos
	// of that slug (StateDir/slugs when empty).
	SlugDir string
	// Logs receives dyno output (source app) and state changes (source heroku);
	// nil discards them.
	Logs drivers.LogSink
	// Logger is for the daemon's own log; nil discards.
	Logger *slog.Logger
	// BootTimeout is how long a web dyno has to bind $PORT (and answer its health
	// check) before R10 (60 s when zero).
	BootTimeout time.Duration
	// PortMin and PortMax bound the ports given as $PORT on 127.0.0.1; both zero lets
	// the kernel pick free ephemeral ports.
	PortMin, PortMax int
	// Cooloff is the wait before restarting after the n-th consecutive crash
	// (drivers.Cooloff when nil; tests pass a tiny one).
	Cooloff func(n int) time.Duration
	// StableAfter is how long a dyno stays up for its crash counter to reset, so the
	// next crash restarts at once again (10 min when zero).
	StableAfter time.Duration
	// MaxLogBytes bounds the disk an output file takes beyond its unread bytes
	// (16 MiB when zero). MaxLineBytes splits longer lines (64 KiB when zero).
	MaxLogBytes  int64
	MaxLineBytes int
	// MemoryInterval is how often the memory of a dyno with a quota (MemoryBytes) is
	// sampled (2 s when zero); MemoryReportInterval the least time between two R14
	// reports of one dyno (20 s when zero, Heroku's cadence); MemoryHardLimit the
	// multiple of the quota past which the dyno is killed with R15 (2, Heroku's 200%
	// for standard dynos, when zero; 1 kills at the quota, as Heroku's Private dynos).
	MemoryInterval       time.Duration
	MemoryReportInterval time.Duration
	MemoryHardLimit      float64
	// OpenSecrets opens the sealed secrets of an adopted dyno (state files hold only
	// the sealed form), so that it restarts after a crash with its whole environment.
	// Nil, or an error, leaves them out and says so in the daemon's log.
	OpenSecrets drivers.SecretOpener
	// User runs the dynos as another user (user.go); nil runs them as the daemon's.
	User *User
}

// Errors a caller can test with errors.Is.
var (
	ErrClosed      = errors.New("process driver closed")
	ErrUnknownDyno = errors.New("no such dyno")
	ErrInvalidSpec = errors.New("invalid dyno spec")
	// ErrMemoryQuota is why Run returns when it killed a one-off past its hard
	// memory limit (R15).
	ErrMemoryQuota = errors.New("memory quota vastly exceeded (R15)")
)

// Driver runs dynos as local process groups. It implements drivers.Driver.
type Driver struct {
	opts   Options
	log    *slog.Logger
	sink   drivers.LogSink
	ctx    context.Context // ends at Close: supervisors and followers stop, dynos run on
	cancel context.CancelFunc
	wg     sync.WaitGroup
	events *supervisor.Queue
	ports  *portAllocator
	slugs  *slugCache
	mem    *memScanner
	// sampler runs every memory watcher's sample on one ticker; output wakes each
	// dyno's follower when its file changed: idle dynos cost neither a wakeup each.
	sampler *memSampler
	output  *outputWatch
	runSeq  atomic.Int64 // numbers one-off dynos: run.1, run.2, …
	// oneOffGroups are the running one-offs, for IsDynoProcess.
	oneOffGroups groupSet

	mu     sync.Mutex
	dynos  map[string]*dyno
	closed bool
}

var _ drivers.Driver = (*Driver)(nil)

type discardSink struct{}

func (discardSink) Publish(logs.Line) {}

// New returns a driver keeping its files in opts.StateDir. It adopts the dynos a
// previous driver left there: a dyno whose process still runs (same pid and start
// time) is watched again, not started twice; one whose process is gone is reported
// crashed and restarted with the cool-off. ctx bounds only New itself.
func New(ctx context.Context, opts Options) (*Driver, error) {
	if opts.StateDir == "" {
		return nil, fmt.Errorf("process driver: %w: StateDir is empty", ErrInvalidSpec)
	}
	if opts.SlugDir == "" {
		opts.SlugDir = filepath.Join(opts.StateDir, "slugs")
	}
	if err := checkUserReaches(opts.User, opts.SlugDir); err != nil {
		return nil, err
	}
	if opts.BootTimeout <= 0 {
		opts.BootTimeout = DefaultBootTimeout
	}
	if opts.Cooloff == nil {
		opts.Cooloff = drivers.Cooloff
	}
	if opts.StableAfter <= 0 {
		opts.StableAfter = DefaultStableAfter
	}
	if opts.MaxLogBytes <= 0 {
		opts.MaxLogBytes = DefaultMaxLogBytes
	}
	if opts.MaxLineBytes <= 0 {
		opts.MaxLineBytes = DefaultMaxLineBytes
	}
	if opts.MemoryInterval <= 0 {
		opts.MemoryInterval = DefaultMemoryInterval
	}
	if opts.MemoryReportInterval <= 0 {
		opts.MemoryReportInterval = DefaultMemoryReportInterval
	}
	if opts.MemoryHardLimit == 0 {
		opts.MemoryHardLimit = DefaultMemoryHardLimit
	}
	if opts.MemoryHardLimit < 1 {
		return nil, fmt.Errorf("process driver: memory hard limit %g times the quota: want 1 or more", opts.MemoryHardLimit)
	}
	if opts.PortMin < 0 || opts.PortMax > 65535 || opts.PortMin > opts.PortMax || (opts.PortMin == 0) != (opts.PortMax == 0) {
		return nil, fmt.Errorf("process driver: port range %d-%d: want 1 <= min <= max <= 65535, or both 0", opts.PortMin, opts.PortMax)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var sink drivers.LogSink = discardSink{}
	if opts.Logs != nil {
		sink = opts.Logs
	}
	for _, dir := range []string{opts.StateDir, opts.SlugDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("process driver: %w", err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("process driver: %w", err)
	}
	states, bad, err := readStates(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("process driver: read %s: %w", opts.StateDir, err)
	}
	for path, err := range bad {
		logger.Error("dyno state file ignored", "file", path, "err", err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		opts:   opts,
		log:    logger.With("driver", "process"),
		sink:   sink,
		ctx:    runCtx,
		cancel: cancel,
		events: supervisor.NewQueue(logger),
		ports:  newPortAllocator(opts.PortMin, opts.PortMax),
		slugs:  &slugCache{dir: opts.SlugDir},
		mem:    newMemScanner("/proc", opts.MemoryInterval/2),
		dynos:  make(map[string]*dyno),
	}
	d.sampler = newMemSampler(opts.MemoryInterval)
	d.output = newOutputWatch(runCtx, opts.StateDir, d.log)
	d.wg.Go(func() { d.events.Run(runCtx) })
	d.wg.Go(func() { d.sampler.run(runCtx) })
	d.wg.Go(d.output.run)
	for _, st := range states {
		d.adopt(st)
	}
	return d, nil
}

// adopt takes over a dyno a previous driver recorded.
func (d *Driver) adopt(st stateFile) {
	if len(st.Spec.SealedSecrets) > 0 {
		if d.opts.OpenSecrets == nil {
			d.log.Error("adopted dyno's secrets cannot be opened: no secret opener", "dyno", st.ID)
		} else if opened, err := d.opts.OpenSecrets(st.Spec); err != nil {
			d.log.Error("open adopted dyno's secrets", "dyno", st.ID, "err", err)
		} else {
			st.Spec.Secrets = opened
		}
	}
	dy := d.newDyno(st.ID, supervisor.Status{
		Dyno: drivers.Dyno{
			Spec: st.Spec, State: st.State, Reason: st.Reason, StartedAt: st.StartedAt,
			StateChangedAt: st.StateChangedAt, Restarts: st.Restarts,
		},
		Crashes: st.Crashes, NextRestart: st.NextRestartAt,
	}, st.LogOffset)
	d.mu.Lock()
	d.dynos[st.ID] = dy
	d.mu.Unlock()

	var run supervisor.Process
	if st.PID > 0 {
		if p := adoptProc(st.PID, st.StartTime); p != nil {
			dy.port, dy.pid, dy.startTime = st.Port, st.PID, st.StartTime
			d.ports.claim(st.Port)
			run = dy.run(p, st.Port)
			dy.sup.Adopted(run)
			d.log.Info("adopted dyno", "dyno", st.ID, "pid", st.PID, "state", st.State)
		}
	}
	switch {
	case run == nil && st.PID > 0:
		// It died while no daemon watched it: a crash like any other.
		d.log.Warn("dyno process gone while manifold was down", "dyno", st.ID, "pid", st.PID)
		dy.sup.Lost(supervisor.Exit{Unknown: "it exited while manifold was not running"})
	case run == nil && st.State != drivers.StateCrashed:
		dy.sup.Lost(supervisor.Exit{Unknown: "no process recorded"})
	}
	d.wg.Go(func() { dy.follow(d.ctx) })
	d.wg.Go(func() { dy.sup.Run(d.ctx, run) })
}

var safeName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$`)

// validateSpec checks what the driver relies on: names that are safe in file names
// and environment values, a command, a slug.
func validateSpec(spec drivers.DynoSpec, oneOff bool) error {
	name := spec.Name()
	switch {
	case !safeName.MatchString(spec.App):
		return fmt.Errorf("%w: app name %q", ErrInvalidSpec, spec.App)
	case spec.Env != "" && !safeName.MatchString(spec.Env):
		return fmt.Errorf("%w: app %s: environment name %q", ErrInvalidSpec, spec.App, spec.Env)
	case !safeName.MatchString(spec.Type) && !(oneOff && spec.Type == ""):
		return fmt.Errorf("%w: app %s: process type %q", ErrInvalidSpec, spec.App, spec.Type)
	case spec.Index < 1 && !(oneOff && spec.Index == 0):
		return fmt.Errorf("%w: app %s: dyno %s: index %d, want 1 or more", ErrInvalidSpec, spec.App, name, spec.Index)
	case spec.Command == "":
		return fmt.Errorf("%w: app %s: dyno %s: empty command", ErrInvalidSpec, spec.App, name)
	case spec.SlugKey == "" || spec.SlugPath == "":
		return fmt.Errorf("%w: app %s: dyno %s: no slug (key %q, path %q)", ErrInvalidSpec, spec.App, name, spec.SlugKey, spec.SlugPath)
	case spec.StopTimeout < 0:
		return fmt.Errorf("%w: app %s: dyno %s: negative stop timeout", ErrInvalidSpec, spec.App, name)
	}
	for key, value := range spec.Vars() {
		if key == "" || strings.ContainsAny(key, "=\x00") || strings.ContainsRune(value, 0) {
			return fmt.Errorf("%w: app %s: dyno %s: config var %q: empty, or holds '=' or NUL", ErrInvalidSpec, spec.App, name, key)
		}
	}
	return nil
}

// newID names a dyno app.env.web.1.<random>: readable in the state directory, unique
// across restarts and deploys (two web.1 of different releases overlap during a deploy).
func newID(spec drivers.DynoSpec) string {
	var random [4]byte
	_, _ = rand.Read(random[:])
	prefix := spec.App
	if spec.Env != "" {
		prefix += "." + spec.Env
	}
	return prefix + "." + spec.Name() + "." + hex.EncodeToString(random[:])
}

// Start unpacks the dyno's slug (once per slug key) and starts its process; it returns
// with the dyno starting. A web dyno is up once it accepts connections on $PORT (and
// answers HealthCheck); Events tells.
func (d *Driver) Start(ctx context.Context, spec drivers.DynoSpec) (drivers.Dyno, error) {
	if err := validateSpec(spec, false); err != nil {
		return drivers.Dyno{}, err
	}
	if d.isClosed() {
		return drivers.Dyno{}, fmt.Errorf("start %s %s: %w", spec.App, spec.Name(), ErrClosed)
	}
	if _, err := d.slugs.unpack(ctx, spec.SlugKey, spec.SlugPath); err != nil {
		return drivers.Dyno{}, fmt.Errorf("start app %s dyno %s: %w", spec.App, spec.Name(), err)
	}
	dy := d.newDyno(newID(spec), supervisor.Status{Dyno: drivers.Dyno{Spec: spec, State: drivers.StateDown}}, 0)
	run, err := dy.sup.Launch(ctx) // down on failure, which tells the readers of Events
	if err != nil {
		dy.removeFiles()
		return drivers.Dyno{}, err
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		// Closed meanwhile: leave the process, the next driver adopts it.
		run.(*dynoRun).p.closeFD()
		return dy.snapshot(), fmt.Errorf("start %s %s: %w", spec.App, spec.Name(), ErrClosed)
	}
	d.dynos[dy.id] = dy
	d.wg.Go(func() { dy.follow(d.ctx) })
	d.wg.Go(func() { dy.sup.Run(d.ctx, run) })
	d.mu.Unlock()
	return dy.snapshot(), nil
}

// Stop stops a dyno: SIGTERM to its process group, up to StopTimeout (30 s) of grace,
// then SIGKILL. It returns once the dyno is down and gone from List, or when ctx ends
// (the stop goes on).
func (d *Driver) Stop(ctx context.Context, id string) error {
	d.mu.Lock()
	dy := d.dynos[id]
	closed := d.closed
	d.mu.Unlock()
	if closed {
		return fmt.Errorf("stop dyno %s: %w", id, ErrClosed)
	}
	if dy == nil {
		return fmt.Errorf("stop dyno %s: %w", id, ErrUnknownDyno)
	}
	switch err := dy.sup.Stop(ctx); {
	case errors.Is(err, supervisor.ErrNotStopped):
		return fmt.Errorf("stop dyno %s: %w", id, ErrClosed)
	case err != nil:
		return fmt.Errorf("stop dyno %s: %w", id, err)
	}
	return nil
}

// List returns every dyno, running or crashed, sorted by app, env, type and index.
func (d *Driver) List(ctx context.Context) ([]drivers.Dyno, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	out := make([]drivers.Dyno, 0, len(d.dynos))
	for _, dy := range d.dynos {
		out = append(out, dy.snapshot())
	}
	d.mu.Unlock()
	slices.SortFunc(out, func(a, b drivers.Dyno) int {
		return cmp.Or(cmp.Compare(a.Spec.App, b.Spec.App), cmp.Compare(a.Spec.Env, b.Spec.Env),
			cmp.Compare(a.Spec.Type, b.Spec.Type), cmp.Compare(a.Spec.Index, b.Spec.Index), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Events delivers every state change in order until Close, then is closed. Delivery
// never blocks a dyno's supervisor: events queue up (bounded, see maxQueuedEvents).
func (d *Driver) Events() <-chan drivers.Event { return d.events.Out() }

// Close stops the driver's goroutines after publishing the output read so far and
// saving each dyno's state; the dynos keep running, and the next New adopts them.
func (d *Driver) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	dynos := make([]*dyno, 0, len(d.dynos))
	for _, dy := range d.dynos {
		dynos = append(dynos, dy)
	}
	d.mu.Unlock()
	d.cancel()
	d.wg.Wait()
	var errs []error
	for _, dy := range dynos {
		if !dy.sup.Stopped() {
			errs = append(errs, dy.persist())
		}
		dy.fl.close()
	}
	return errors.Join(errs...)
}

func (d *Driver) isClosed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

func (d *Driver) remove(id string) {
	d.mu.Lock()
	delete(d.dynos, id)
	d.mu.Unlock()
}
