// Package drivers defines what runs dynos: the Driver interface the reconciler calls
// and the plain Dyno records drivers report. Implementations live beneath it, process
// (the embedded default) and docker, both on the shared dyno manager, supervisor.
package drivers

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// State is a dyno's state, as `manifold ps` prints it.
type State string

// The dyno states. A dyno is starting until it is up (a web dyno: bound $PORT and, when
// set, answered its health check; other types: running), crashed after it exited on its
// own (the driver restarts it after a cool-off), down once stopped by manifold.
const (
	StateStarting State = "starting"
	StateUp       State = "up"
	StateCrashed  State = "crashed"
	StateDown     State = "down"
)

// DynoSpec is what a driver needs to start one dyno.
type DynoSpec struct {
	App string `json:"app"`
	Env string `json:"env"`
	// Type is the process type (web, worker) and Index its number: web.1 is Type web, Index 1.
	Type  string `json:"type"`
	Index int    `json:"index"`
	// Release is the ledger version the dyno runs (v7 is 7).
	Release int `json:"release"`
	// SlugKey names the slug; SlugPath is its tarball (a gzipped tar of /app) on disk.
	SlugKey  string `json:"slug_key"`
	SlugPath string `json:"slug_path"`
	// Stack is the stack image for container drivers; the process driver ignores it.
	Stack string `json:"stack"`
	// Command runs through /bin/sh -c in the slug's root.
	Command string `json:"command"`
	// Config is the release's config vars. The driver adds PORT, DYNO and PS.
	Config map[string]string `json:"config"`
	// Secrets are the release's opened secrets, config vars that only the dyno's own
	// environment may hold: never encoded (json "-"), so no state file, label or API
	// answer carries them. A name in both Config and Secrets is the secret.
	Secrets map[string]string `json:"-"`
	// SealedSecrets are the same secrets as sealed in the ledger (name -> "age:…"),
	// for a driver that must start an adopted dyno again to open them anew
	// (SecretOpener); safe to write down.
	SealedSecrets map[string]string `json:"sealed_secrets,omitempty"`
	// SealedFor is the environment SealedSecrets are sealed for (bound into each),
	// when not Env: a review environment's (pr-7) are sealed for "review".
	SealedFor string `json:"sealed_for,omitempty"`
	// Size is the size name; MemoryBytes and CPUShares its limits (0: no limit).
	Size        string `json:"size"`
	MemoryBytes int64  `json:"memory_bytes"`
	CPUShares   int64  `json:"cpu_shares"`
	// HealthCheck, when set, is an HTTP path a web dyno must answer 2xx to be up.
	HealthCheck string `json:"health_check,omitempty"`
	// StopTimeout is the grace between SIGTERM and SIGKILL (30 s when zero).
	StopTimeout time.Duration `json:"stop_timeout"`
}

// Name is the dyno's name within its app: web.1.
func (s DynoSpec) Name() string { return DynoName(s.Type, s.Index) }

// Ref names the dyno in errors and logs: "hello/production web.1 (v3)".
func (s DynoSpec) Ref() string {
	return fmt.Sprintf("%s/%s %s (v%d)", s.App, s.Env, s.Name(), s.Release)
}

// containerName is what app, env and process type names must be for a container
// engine, which builds container, network and service names from them.
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_-]*$`)

// ValidateForContainers checks what the container drivers (docker, swarm) need of a
// spec: app, env and type usable in engine object names, an index from 1, a slug,
// no negative limit.
func (s DynoSpec) ValidateForContainers() error {
	for _, f := range []struct{ field, value string }{{"app", s.App}, {"env", s.Env}, {"type", s.Type}} {
		if !containerName.MatchString(f.value) {
			return fmt.Errorf("dyno %s: %s %q: want letters, digits, - and _", s.Ref(), f.field, f.value)
		}
	}
	if s.Index < 1 {
		return fmt.Errorf("dyno %s: index %d: want 1 or more", s.Ref(), s.Index)
	}
	if s.SlugPath == "" {
		return fmt.Errorf("dyno %s: no slug path", s.Ref())
	}
	if s.MemoryBytes < 0 || s.CPUShares < 0 {
		return fmt.Errorf("dyno %s: negative size limits", s.Ref())
	}
	return nil
}

// Vars are the dyno's config vars with its secrets over them: what its environment
// holds before the driver adds PORT, DYNO and PS.
func (s DynoSpec) Vars() map[string]string {
	vars := make(map[string]string, len(s.Config)+len(s.Secrets))
	for k, v := range s.Config {
		vars[k] = v
	}
	for k, v := range s.Secrets {
		vars[k] = v
	}
	return vars
}

// SecretOpener opens a dyno's SealedSecrets again (the daemon's identity), for a
// driver that adopts a dyno whose opened Secrets died with the previous daemon.
type SecretOpener func(spec DynoSpec) (map[string]string, error)

// Dyno is a running (or crashed) dyno as a driver sees it.
type Dyno struct {
	// ID is the driver's handle: a container id, or a process driver's dyno id.
	ID   string   `json:"id"`
	Spec DynoSpec `json:"spec"`
	// Name is web.1.
	Name  string `json:"name"`
	State State  `json:"state"`
	// Addr is host:port where the router reaches a web dyno; empty for others.
	Addr string `json:"addr,omitempty"`
	// StartedAt is when the dyno last (re)started; StateChangedAt when State last changed.
	StartedAt      time.Time `json:"started_at"`
	StateChangedAt time.Time `json:"state_changed_at"`
	// Restarts counts crash restarts since the dyno was first started.
	Restarts int `json:"restarts"`
	// MemoryBytes is the dyno's resident memory at the dyno manager's last sample
	// (0: not sampled yet, or a driver that does not sample).
	MemoryBytes int64 `json:"memory_bytes,omitempty"`
	// Reason says why the dyno is crashed: "Process exited with status 1", R10, R15.
	Reason string `json:"reason,omitempty"`
}

// Event tells that a dyno changed state.
type Event struct {
	Dyno Dyno  `json:"dyno"`
	From State `json:"from"`
	To   State `json:"to"`
	// Code is a Heroku error code when one applies (R10 boot timeout, R14, R15).
	Code string `json:"code,omitempty"`
}

// OneOff is a one-off dyno (`manifold run`): it runs once, attached, and never restarts.
type OneOff struct {
	DynoSpec
	// Stdin, Stdout and Stderr are attached to the process; Stdin may be nil.
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Terminal, when set, runs the process on a pseudo-terminal of that size (an
	// interactive `manifold run bash`): its stdin, stdout and stderr are the
	// terminal, whose output (both streams, as a terminal shows them) goes to Stdout.
	Terminal *TerminalSize
}

// TerminalSize is a terminal's size in characters.
type TerminalSize struct {
	Rows, Cols uint16
}

// LogSink receives every line a driver produces: dyno output (source app) and the
// platform's own lines (source heroku: state changes, crashes, R10, R15). Publish
// must never block.
type LogSink interface {
	Publish(line logs.Line)
}

// Driver runs dynos. It is safe for concurrent use. A driver restarts crashed dynos
// itself with Cooloff, and after its process restarts it adopts the dynos it left
// running (List shows them) instead of starting them again.
type Driver interface {
	// Start starts a dyno and returns at once with it starting; Events tells when it is up.
	Start(ctx context.Context, spec DynoSpec) (Dyno, error)
	// Stop sends SIGTERM, waits up to the dyno's StopTimeout, then SIGKILL, and removes it.
	Stop(ctx context.Context, id string) error
	// List returns every dyno the driver manages, running or crashed.
	List(ctx context.Context) ([]Dyno, error)
	// Run runs a one-off dyno to completion and returns its exit code.
	Run(ctx context.Context, dyno OneOff) (exitCode int, err error)
	// Events delivers state changes until Close. Slow readers miss no events: the
	// driver buffers, then blocks only its own event delivery goroutine.
	Events() <-chan Event
	// Close stops watching and releases resources; running dynos keep running.
	Close() error
}

// DynoName is Heroku's dyno name: web.1.
func DynoName(processType string, index int) string {
	return processType + "." + strconv.Itoa(index)
}

// Cooloff is how long to wait before restarting a dyno after its n-th consecutive
// crash (n from 1): Heroku restarts at once the first time, then waits longer each
// time, capped at 20 minutes.
func Cooloff(n int) time.Duration {
	const maxCooloff = 20 * time.Minute
	if n <= 1 {
		return 0
	}
	d := 10 * time.Second
	for i := 2; i < n && d < maxCooloff; i++ {
		d *= 2
	}
	return min(d, maxCooloff)
}
