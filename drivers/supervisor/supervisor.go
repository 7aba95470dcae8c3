package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

// Defaults of Config.
const (
	DefaultBootTimeout = 60 * time.Second
	DefaultStopTimeout = 30 * time.Second
	DefaultStableAfter = 10 * time.Minute
)

// ErrNotStopped is Stop's error when the supervisor ended without stopping the dyno:
// its driver closed meanwhile (the dyno runs on; the next driver adopts it).
var ErrNotStopped = errors.New("supervisor ended before the dyno stopped")

// Config is what every supervisor of a driver shares.
type Config struct {
	// Logs receives the platform lines (source heroku); required.
	Logs drivers.LogSink
	// Events receives every state change; required. The driver runs it.
	Events *Queue
	// Logger is the daemon's own log (nil discards).
	Logger *slog.Logger
	// BootTimeout is how long a web dyno has to bind $PORT (and answer its health
	// check) before R10 (DefaultBootTimeout when zero).
	BootTimeout time.Duration
	// Cooloff is the wait before the restart after the n-th consecutive crash
	// (drivers.Cooloff when nil; tests pass a tiny one).
	Cooloff func(n int) time.Duration
	// StableAfter is how long a dyno stays up for its crash count to start afresh, so
	// that its next crash restarts at once again (DefaultStableAfter when zero).
	StableAfter time.Duration
	// Memory is how the memory quota is sampled (not at all by default).
	Memory MemoryConfig
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.BootTimeout <= 0 {
		c.BootTimeout = DefaultBootTimeout
	}
	if c.Cooloff == nil {
		c.Cooloff = drivers.Cooloff
	}
	if c.StableAfter <= 0 {
		c.StableAfter = DefaultStableAfter
	}
	if c.Memory.Interval > 0 {
		if c.Memory.ReportInterval <= 0 {
			c.Memory.ReportInterval = DefaultMemoryReportInterval
		}
		if c.Memory.HardLimit == 0 {
			c.Memory.HardLimit = DefaultMemoryHardLimit
		}
	}
	return c
}

// Runtime is what a driver does for the supervisor of one dyno. The supervisor calls
// it from its own goroutine (Start also from Launch), never concurrently.
type Runtime interface {
	// Start starts a run of the dyno's process: its first, a restart after a crash,
	// or a replacement of a run that is Gone. It returns once the process runs.
	Start(ctx context.Context) (Process, error)
	// Changed is called after every change of the dyno's status (the process driver
	// saves its state file).
	Changed(st Status)
	// Down releases what the dyno holds once it is stopped for good (its container,
	// files, port); it is called once, before the down event.
	Down()
}

// Process is one run of a dyno, as its driver started or adopted it.
type Process interface {
	Meter
	// ID is the driver's handle of the dyno during this run (drivers.Dyno.ID).
	ID() string
	// Addr is host:port where a web dyno's $PORT is reached; empty for other types.
	Addr() string
	// Wait blocks until the run ends and tells how, or until ctx ends. Its output
	// must be published by then, so that "Process exited" follows the last line. An
	// error says the run could not be watched; the run counts as ended.
	Wait(ctx context.Context) (Exit, error)
}

// Exit is how a run ended.
type Exit struct {
	// Code is the exit status (128+n for signal n).
	Code int
	// Unknown, when set, says why the status is not known (an adopted process: only
	// its parent learns it).
	Unknown string
	// OOM is set when the kernel's OOM killer ended the run (a container over its
	// memory limit): R15.
	OOM bool
	// Gone, when set, is the platform line telling that the run vanished from outside
	// (its container removed): the dyno is started again at once, not counted as a
	// crash of the app.
	Gone string
}

// Status is a supervised dyno's record and crash count, as a driver persists it.
type Status struct {
	Dyno        drivers.Dyno
	Crashes     int       // consecutive crashes, for the cool-off
	NextRestart time.Time // when a crashed dyno starts again
}

// Supervisor owns one dyno's life: call Launch (a new dyno) then Run in a goroutine,
// or only Run (an adopted one). Status, Dyno, Stop and Done are safe to call from
// any goroutine.
type Supervisor struct {
	cfg     Config
	rt      Runtime
	spec    drivers.DynoSpec
	log     *slog.Logger
	stopReq chan struct{} // closed by Stop
	stopMu  sync.Once
	done    chan struct{} // closed when Run returns

	mu      sync.Mutex
	st      Status
	stopped bool
}

// New returns the supervisor of the dyno st.Dyno (a new dyno is StateDown; an adopted
// one has the state its driver recorded).
func New(cfg Config, st Status, rt Runtime) *Supervisor {
	cfg = cfg.withDefaults()
	st.Dyno.Name = st.Dyno.Spec.Name()
	return &Supervisor{
		cfg: cfg, rt: rt, spec: st.Dyno.Spec, st: st,
		log:     cfg.Logger.With("dyno", st.Dyno.ID),
		stopReq: make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// now is a log line's time: microseconds, as logplex keeps them.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Say publishes a platform line (source heroku) of the dyno.
func (s *Supervisor) Say(text string) {
	s.cfg.Logs.Publish(logs.Line{Time: now(), App: s.spec.App, Env: s.spec.Env, Source: logs.SourceHeroku, Dyno: s.spec.Name(), Text: text})
}

// Status is the dyno's record (its config copied) and crash count.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.statusLocked()
}

func (s *Supervisor) statusLocked() Status {
	st := s.st
	st.Dyno.Spec.Config = maps.Clone(st.Dyno.Spec.Config)
	return st
}

// Dyno is the dyno's record, as List reports it.
func (s *Supervisor) Dyno() drivers.Dyno { return s.Status().Dyno }

// Done is closed when Run returns: the dyno is down, or the driver closed.
func (s *Supervisor) Done() <-chan struct{} { return s.done }

// Stopped reports whether the dyno was stopped for good.
func (s *Supervisor) Stopped() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopped
}

// Stop asks Run to stop the dyno (Heroku's stop: SIGTERM, the grace, SIGKILL) and
// waits until it is down, or until ctx ends (the stop goes on). It is
// ErrNotStopped when Run ended for another reason (the driver closed).
func (s *Supervisor) Stop(ctx context.Context) error {
	s.stopMu.Do(func() { close(s.stopReq) })
	select {
	case <-s.done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if !s.Stopped() {
		return ErrNotStopped
	}
	return nil
}

// setState records a state change, logs Heroku's "State changed" line, emits the
// event and tells the runtime.
func (s *Supervisor) setState(to drivers.State, reason, code string) {
	s.mu.Lock()
	from := s.st.Dyno.State
	s.st.Dyno.State = to
	s.st.Dyno.StateChangedAt = now()
	s.st.Dyno.Reason = reason
	st := s.statusLocked()
	s.mu.Unlock()
	if from != to {
		s.Say(StateChanged(from, to))
	}
	s.cfg.Events.Push(drivers.Event{Dyno: st.Dyno, From: from, To: to, Code: code})
	s.rt.Changed(st)
}

// Launch starts a new dyno's first run; Run(ctx, p) then supervises it. When the
// start fails the dyno is down (with the error as Reason), Done is closed and Run
// must not be called.
func (s *Supervisor) Launch(ctx context.Context) (Process, error) {
	p, err := s.launch(ctx)
	if err != nil {
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.setState(drivers.StateDown, err.Error(), "")
		close(s.done)
	}
	return p, err
}

// launch starts a run: starting, then the process.
func (s *Supervisor) launch(ctx context.Context) (Process, error) {
	s.mu.Lock()
	if s.st.Dyno.State == drivers.StateCrashed {
		s.st.Dyno.Restarts++
	}
	s.mu.Unlock()
	s.setState(drivers.StateStarting, "", "")
	s.Say(Starting(s.spec.Command))
	p, err := s.rt.Start(ctx)
	if err != nil {
		s.Say(StartFailed(err))
		return nil, err
	}
	s.mu.Lock()
	s.st.Dyno.ID = p.ID()
	s.st.Dyno.Addr = p.Addr()
	s.st.Dyno.StartedAt = now()
	st := s.statusLocked()
	s.mu.Unlock()
	s.rt.Changed(st)
	return p, nil
}

// Adopted records the run of an adopted dyno that still runs (its address).
func (s *Supervisor) Adopted(p Process) {
	s.mu.Lock()
	s.st.Dyno.ID = p.ID()
	s.st.Dyno.Addr = p.Addr()
	s.mu.Unlock()
}

// Lost records the end of a run that nobody watched (it ended while the daemon was
// down): a crash like any other, restarted after the cool-off by Run(ctx, nil).
func (s *Supervisor) Lost(e Exit) {
	s.ended(e, false)
}

// Run supervises the dyno until it is stopped (it is down then) or ctx ends (the
// driver closed: the dyno's process runs on). p is the running process, or nil when
// the dyno is crashed and waits for its cool-off.
func (s *Supervisor) Run(ctx context.Context, p Process) {
	defer close(s.done)
	for {
		if p == nil {
			var ok bool
			if p, ok = s.restart(ctx); !ok {
				return
			}
			if p == nil {
				continue
			}
		}
		if !s.run(ctx, p) {
			return
		}
		p = nil
	}
}

// restart waits out the cool-off and starts the process again. ok is false when the
// dyno was stopped or the driver closed meanwhile; p is nil when the start failed
// (the dyno is crashed again).
func (s *Supervisor) restart(ctx context.Context) (p Process, ok bool) {
	s.mu.Lock()
	wait := time.Until(s.st.NextRestart)
	s.mu.Unlock()
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-s.stopReq:
		s.down("")
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
	p, err := s.launch(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil, false
		}
		s.log.Error("restart dyno", "err", err)
		s.crashed(err.Error(), "")
		return nil, true
	}
	return p, true
}

type exitResult struct {
	exit Exit
	err  error
}

// run watches a running process until it ends (true: restart it), is stopped or the
// driver closes (false).
func (s *Supervisor) run(ctx context.Context, p Process) bool {
	var wg sync.WaitGroup
	defer wg.Wait()
	// Not ctx: when the driver closes, the watchers stop only after run returns.
	watchCtx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	exited := make(chan exitResult, 1)
	wg.Go(func() {
		e, err := p.Wait(watchCtx)
		exited <- exitResult{e, err}
	})
	var hardKilled atomic.Bool
	if s.cfg.Memory.Interval > 0 && s.spec.MemoryBytes > 0 {
		wg.Go(func() {
			WatchMemory(watchCtx, s.cfg.Memory, MemoryWatch{
				Quota: s.spec.MemoryBytes, Meter: p, Say: s.Say, Log: s.log,
				Sampled: func(used int64) {
					s.mu.Lock()
					defer s.mu.Unlock()
					// A late sample of a run that ended must not outlive the crash.
					if s.st.Dyno.State == drivers.StateStarting || s.st.Dyno.State == drivers.StateUp {
						s.st.Dyno.MemoryBytes = used
					}
				},
				R14: func() {
					rec := s.Dyno()
					s.cfg.Events.Push(drivers.Event{Dyno: rec, From: rec.State, To: rec.State, Code: "R14"})
				},
				R15: func() { hardKilled.Store(true) },
			})
		})
	}

	s.mu.Lock()
	state := s.st.Dyno.State
	s.mu.Unlock()
	if state != drivers.StateUp {
		switch outcome, result := s.boot(ctx, p, exited); outcome {
		case bootUp:
			s.setState(drivers.StateUp, "", "")
		case bootExited:
			s.exited(result, hardKilled.Load())
			return true
		case bootTimedOut, bootUnhealthy:
			return s.bootTimeout(ctx, p, exited, outcome == bootUnhealthy)
		case bootStop:
			return s.stop(ctx, p, exited)
		case bootClosed:
			return false
		}
	}
	select {
	case result := <-exited:
		s.exited(result, hardKilled.Load())
		return true
	case <-s.stopReq:
		return s.stop(ctx, p, exited)
	case <-ctx.Done():
		return false
	}
}

// exited handles a run that ended on its own, or that the memory watcher (or the
// kernel) killed past the hard limit (R15): a crash.
func (s *Supervisor) exited(result exitResult, hardKilled bool) {
	if result.err != nil {
		s.log.Error("watch dyno process", "err", result.err)
	}
	s.ended(result.exit, hardKilled)
}

func (s *Supervisor) ended(e Exit, hardKilled bool) {
	switch {
	case e.Gone != "":
		s.Say(e.Gone)
		s.log.Warn("dyno run gone; starting it again", "why", e.Gone)
		s.mu.Lock()
		s.st.Dyno.Addr, s.st.Dyno.MemoryBytes = "", 0
		s.st.NextRestart = time.Now()
		s.mu.Unlock()
		s.setState(drivers.StateCrashed, e.Gone, "")
	case hardKilled:
		s.Say(Exited(e))
		s.crashed(MsgR15, "R15")
	case e.OOM:
		s.Say(MsgR15)
		s.Say(Exited(e))
		s.crashed(MsgR15, "R15")
	default:
		text := Exited(e)
		s.Say(text)
		s.crashed(text, "")
	}
}

// crashed records a crash and schedules the restart after the cool-off.
func (s *Supervisor) crashed(reason, code string) {
	s.mu.Lock()
	// A dyno that stayed up long enough starts its crash count afresh.
	if s.st.Dyno.State == drivers.StateUp && time.Since(s.st.Dyno.StateChangedAt) >= s.cfg.StableAfter {
		s.st.Crashes = 0
	}
	s.st.Crashes++
	wait := s.cfg.Cooloff(s.st.Crashes)
	s.st.NextRestart = time.Now().Add(wait)
	s.st.Dyno.Addr, s.st.Dyno.MemoryBytes = "", 0
	crashes := s.st.Crashes
	s.mu.Unlock()
	s.log.Warn("dyno crashed", "reason", reason, "crashes", crashes, "restart_in", wait)
	s.setState(drivers.StateCrashed, reason, code)
}

// stop is Heroku's stop: SIGTERM to every process, the grace, SIGKILL to what is
// left (R12). It is false either way: the dyno is down, or the driver closed first.
func (s *Supervisor) stop(ctx context.Context, p Process, exited <-chan exitResult) bool {
	grace := s.spec.StopTimeout
	if grace <= 0 {
		grace = DefaultStopTimeout
	}
	s.Say(MsgTerm)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		s.log.Error("stop dyno", "err", err)
	}
	code := ""
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var result exitResult
	select {
	case result = <-exited:
	case <-ctx.Done():
		return false
	case <-timer.C:
		code = "R12"
		s.Say(R12(grace))
		s.Say(MsgKillRemaining)
		if err := p.Signal(syscall.SIGKILL); err != nil {
			s.log.Error("kill dyno", "err", err)
		}
		select {
		case result = <-exited:
		case <-ctx.Done():
			return false
		}
	}
	if result.err != nil {
		s.log.Error("watch dyno process", "err", result.err)
	}
	s.Say(Exited(result.exit))
	s.down(code)
	return false
}

// down ends a stopped dyno: the runtime releases it, then the event.
func (s *Supervisor) down(code string) {
	s.mu.Lock()
	s.stopped = true
	s.st.Dyno.Addr, s.st.Dyno.MemoryBytes = "", 0
	s.mu.Unlock()
	s.rt.Down()
	s.setState(drivers.StateDown, "", code)
}
