package supervisor

import (
	"context"
	"errors"
	"log/slog"
	"syscall"
	"time"
)

// Defaults of MemoryConfig, Heroku's.
const (
	DefaultMemoryInterval       = 2 * time.Second
	DefaultMemoryReportInterval = 20 * time.Second
	DefaultMemoryHardLimit      = 2.0
)

// MemoryConfig is how a dyno's memory quota (DynoSpec.MemoryBytes) is enforced by
// sampling. A driver whose runtime enforces the quota itself (a container's cgroup,
// whose OOM kill comes back as Exit.OOM) leaves Interval zero: nothing is sampled.
type MemoryConfig struct {
	// Interval is how often the memory is sampled; zero: never.
	Interval time.Duration
	// ReportInterval is the least time between two R14 reports of one run.
	ReportInterval time.Duration
	// HardLimit is the multiple of the quota past which the run is killed with R15
	// (2: Heroku's 200% for standard dynos; 1 kills at the quota, as Private dynos).
	HardLimit float64
	// Every, when set, runs sample about every Interval until it returns true or ctx
	// ends, and returns then; a driver with many dynos runs every sample on one
	// ticker this way (the process driver's memSampler). Nil: a ticker per run.
	Every func(ctx context.Context, sample func() (stop bool))
}

// every runs sample every cfg.Interval until it returns true or ctx ends.
func (cfg MemoryConfig) every(ctx context.Context, sample func() (stop bool)) {
	if cfg.Every != nil {
		cfg.Every(ctx, sample)
		return
	}
	ticker := time.NewTicker(cfg.Interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		if sample() {
			return
		}
	}
}

// Meter measures and signals one run of a dyno (or a one-off).
type Meter interface {
	// Memory is the bytes the run uses, measured so that a page shared by its
	// processes counts once when the total is over limit; ok is false when the run
	// is gone (or going).
	Memory(limit int64) (used int64, ok bool)
	// Signal sends sig to every process of the run; it must be safe after the run
	// ended (it then signals nothing).
	Signal(sig syscall.Signal) error
}

// MemoryWatch is what WatchMemory watches and whom it tells.
type MemoryWatch struct {
	Quota int64 // bytes; the watch returns at once when <= 0
	Meter Meter
	// Say publishes a platform line of the dyno.
	Say func(text string)
	// Sampled, when set, is called with every sample, in bytes.
	Sampled func(used int64)
	// R14, when set, is called at each R14 report (a dyno's supervisor emits the event).
	R14 func()
	// R15 is called once the run is over the hard limit, before it is killed, so
	// that whoever waits for its exit reports R15 rather than a plain crash.
	R15 func()
	// Log is the daemon's log, with the dyno in its attributes (nil discards).
	Log *slog.Logger
}

// WatchMemory samples w.Meter every cfg.Interval (through cfg.Every when set) until
// ctx ends. Above the quota it logs Heroku's R14 (at most once per ReportInterval);
// above HardLimit times the quota it logs R15, calls w.R15, SIGKILLs the run and
// returns. Whoever waits for the run reports the exit.
func WatchMemory(ctx context.Context, cfg MemoryConfig, w MemoryWatch) {
	if w.Quota <= 0 || cfg.Interval <= 0 {
		return
	}
	log := w.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hard := int64(float64(w.Quota) * cfg.HardLimit)
	var lastR14 time.Time // only the sampling goroutine reads and writes it
	cfg.every(ctx, func() bool {
		if ctx.Err() != nil {
			return true
		}
		used, ok := w.Meter.Memory(w.Quota)
		if !ok || ctx.Err() != nil {
			return false // the run is gone or going: its waiter reports the exit
		}
		if w.Sampled != nil {
			w.Sampled(used)
		}
		switch {
		case used > hard:
			w.Say(MemoryUsage(used, w.Quota))
			w.Say(MsgR15)
			w.Say(MsgKill)
			log.Warn("dyno over its hard memory limit: killed", "bytes", used, "quota", w.Quota)
			if w.R15 != nil {
				w.R15()
			}
			if err := w.Meter.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
				log.Error("kill dyno after R15", "err", err)
			}
			return true
		case used > w.Quota && (lastR14.IsZero() || time.Since(lastR14) >= cfg.ReportInterval):
			lastR14 = time.Now()
			w.Say(MemoryUsage(used, w.Quota))
			w.Say(MsgR14)
			if w.R14 != nil {
				w.R14()
			}
		}
		return false
	})
}
