package process

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// dyno is one dyno of this driver: its files, its output follower, and the runtime
// (start, signal, wait, measure) that its supervisor drives. The supervisor owns every
// state change; the fields under mu are what the state file records of the current
// process.
type dyno struct {
	d         *Driver
	id        string
	spec      drivers.DynoSpec
	statePath string
	logPath   string
	fl        *follower
	sup       *supervisor.Supervisor
	done      <-chan struct{} // the supervisor's Done
	// memSamples counts the memory watcher's samples and memUsage holds the last, in
	// bytes (tests and, later, metrics read them).
	memSamples atomic.Int64
	memUsage   atomic.Int64

	mu        sync.Mutex
	port      int
	pid       int
	startTime uint64

	persistMu sync.Mutex
	removed   bool // the state and output files are gone: never write them again
}

var _ supervisor.Runtime = (*dyno)(nil)

// newDyno makes a dyno with the status its supervisor starts from.
func (d *Driver) newDyno(id string, st supervisor.Status, logOffset int64) *dyno {
	spec := st.Dyno.Spec
	st.Dyno.ID = id
	dy := &dyno{
		d:         d,
		id:        id,
		spec:      spec,
		statePath: filepath.Join(d.opts.StateDir, id+".json"),
		logPath:   filepath.Join(d.opts.StateDir, id+".log"),
	}
	dy.sup = supervisor.New(d.supervisorConfig(), st, dy)
	dy.done = dy.sup.Done()
	dy.fl = newFollower(dy.logPath, logOffset, d.opts.MaxLineBytes, d.opts.MaxLogBytes, dy.appLine,
		func(msg string, err error) { d.log.Error(msg, "dyno", id, "file", dy.logPath, "err", err) })
	return dy
}

// supervisorConfig is what the driver's options say of Heroku's dyno manager.
func (d *Driver) supervisorConfig() supervisor.Config {
	return supervisor.Config{
		Logs: d.sink, Events: d.events, Logger: d.log,
		BootTimeout: d.opts.BootTimeout, Cooloff: d.opts.Cooloff, StableAfter: d.opts.StableAfter,
		Memory: supervisor.MemoryConfig{
			Interval: d.opts.MemoryInterval, ReportInterval: d.opts.MemoryReportInterval, HardLimit: d.opts.MemoryHardLimit,
			Every: d.everySample,
		},
	}
}

// snapshot is the dyno's record as List reports it.
func (dy *dyno) snapshot() drivers.Dyno { return dy.sup.Dyno() }

// now is a log line's time: microseconds, as logplex keeps them.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// appLine publishes a line of the dyno's output.
func (dy *dyno) appLine(text string) {
	dy.d.sink.Publish(logs.Line{Time: now(), App: dy.spec.App, Env: dy.spec.Env, Source: logs.SourceApp, Dyno: dy.spec.Name(), Text: text})
}

// Changed saves the state file after each change of the dyno's status.
func (dy *dyno) Changed(supervisor.Status) {
	if err := dy.persist(); err != nil {
		dy.d.log.Error("save dyno state", "dyno", dy.id, "err", err)
	}
}

// Down releases a dyno stopped for good: its port, its place in List, its files.
func (dy *dyno) Down() {
	dy.mu.Lock()
	port := dy.port
	dy.port, dy.pid, dy.startTime = 0, 0, 0
	dy.mu.Unlock()
	dy.d.ports.release(port)
	dy.d.remove(dy.id)
	dy.fl.close()
	dy.removeFiles()
}

// persist writes the state file (unless the dyno is gone).
func (dy *dyno) persist() error {
	dy.persistMu.Lock()
	defer dy.persistMu.Unlock()
	if dy.removed {
		return nil
	}
	sup := dy.sup.Status()
	dy.mu.Lock()
	st := stateFile{
		ID: dy.id, Spec: dy.spec, PID: dy.pid, StartTime: dy.startTime, Port: dy.port,
		State: sup.Dyno.State, Reason: sup.Dyno.Reason, StartedAt: sup.Dyno.StartedAt,
		StateChangedAt: sup.Dyno.StateChangedAt, Restarts: sup.Dyno.Restarts,
		Crashes: sup.Crashes, NextRestartAt: sup.NextRestart,
	}
	dy.mu.Unlock()
	st.LogOffset = dy.fl.offset()
	return writeState(dy.statePath, st)
}

// removeFiles deletes the state and output files of a dyno that is down for good.
func (dy *dyno) removeFiles() {
	dy.persistMu.Lock()
	dy.removed = true
	dy.persistMu.Unlock()
	for _, path := range []string{dy.statePath, dy.logPath} {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			dy.d.log.Warn("remove dyno file", "dyno", dy.id, "file", path, "err", err)
		}
	}
}

// shellScript is what /bin/sh -c runs: the slug's .profile.d scripts first (buildpacks
// put PATH and friends there, as on Heroku), then the command.
func shellScript(dir, command string) string {
	scripts, _ := filepath.Glob(filepath.Join(dir, ".profile.d", "*.sh"))
	if len(scripts) == 0 {
		return command
	}
	return "for f in .profile.d/*.sh; do [ -f \"$f\" ] && . \"./$f\"; done; unset f\n" + command
}

// dynoEnv is a dyno's whole environment: nothing of the daemon's but PATH, then the
// config vars, then what the platform sets (PORT, DYNO, PS), which config cannot override.
func dynoEnv(dir string, spec drivers.DynoSpec, name string, port int) []string {
	systemPath := os.Getenv("PATH")
	if systemPath == "" {
		systemPath = "/usr/local/bin:/usr/bin:/bin"
	}
	vars := map[string]string{
		"PATH": filepath.Join(dir, "bin") + ":" + systemPath,
		"HOME": dir,
	}
	for k, v := range spec.Vars() {
		vars[k] = v
	}
	vars["PORT"] = strconv.Itoa(port)
	vars["DYNO"] = name
	vars["PS"] = name
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	return env
}

// Start starts the dyno's process with its output appended to the dyno's file.
func (dy *dyno) Start(ctx context.Context) (supervisor.Process, error) {
	d := dy.d
	name := dy.spec.Name()
	fail := func(err error) (supervisor.Process, error) {
		return nil, fmt.Errorf("start app %s dyno %s: %w", dy.spec.App, name, err)
	}
	dir, err := d.slugs.unpack(ctx, dy.spec.SlugKey, dy.spec.SlugPath)
	if err != nil {
		return fail(err)
	}
	port, err := d.ports.get()
	if err != nil {
		return fail(err)
	}
	out, err := os.OpenFile(dy.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		d.ports.release(port)
		return fail(err)
	}
	defer out.Close()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		d.ports.release(port)
		return fail(err)
	}
	defer devNull.Close()

	// The process's stdout and stderr are the file itself, never a pipe of this daemon:
	// a dyno must not get SIGPIPE when the daemon dies. Its own process group lets Stop
	// signal everything it started.
	started, err := os.StartProcess("/bin/sh", []string{"/bin/sh", "-c", shellScript(dir, dy.spec.Command)}, &os.ProcAttr{
		Dir:   dir,
		Env:   dynoEnv(dir, dy.spec, name, port),
		Files: []*os.File{devNull, out, out},
		Sys:   d.sysProcAttr(&syscall.SysProcAttr{Setpgid: true}),
	})
	if err != nil {
		d.ports.release(port)
		return fail(err)
	}
	pid := started.Pid
	_ = started.Release() // reaped through proc.wait, not os.Process
	// Our unreaped child: its pid cannot be reused before we read its start time.
	_, startTime, err := procStat(pid)
	if err != nil {
		d.log.Error("read start time of dyno process", "dyno", dy.id, "pid", pid, "err", err)
	}
	dy.mu.Lock()
	dy.port, dy.pid, dy.startTime = port, pid, startTime
	dy.mu.Unlock()
	d.log.Info("dyno process started", "dyno", dy.id, "pid", pid, "port", port)
	return dy.run(newProc(pid, startTime), port), nil
}

// dynoRun is one run of a dyno's process group, as its supervisor sees it.
type dynoRun struct {
	dy   *dyno
	p    *proc
	port int
}

var _ supervisor.Process = (*dynoRun)(nil)

func (dy *dyno) run(p *proc, port int) *dynoRun { return &dynoRun{dy: dy, p: p, port: port} }

// ID is the dyno's id: a dyno keeps it across restarts.
func (r *dynoRun) ID() string { return r.dy.id }

// Addr is 127.0.0.1:$PORT for a web dyno.
func (r *dynoRun) Addr() string {
	if r.dy.spec.Type != "web" || r.port <= 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port))
}

// Wait waits for the process (proc.wait kills what the leader leaves behind, as a
// dyno is one container on Heroku), publishes its last output and frees its port.
func (r *dynoRun) Wait(ctx context.Context) (supervisor.Exit, error) {
	status, err := r.p.wait(ctx)
	if ctx.Err() != nil {
		return supervisor.Exit{}, ctx.Err() // the driver closed: the process runs on
	}
	r.dy.fl.pump(true)
	r.dy.mu.Lock()
	if r.dy.pid == r.p.pid {
		r.dy.port, r.dy.pid, r.dy.startTime = 0, 0, 0
	}
	r.dy.mu.Unlock()
	r.dy.d.ports.release(r.port)
	exit := supervisor.Exit{Code: status.Code}
	if !status.Known {
		exit.Unknown = unknownStatus
	}
	return exit, err
}

// unknownStatus is why an adopted process's exit status is not known.
const unknownStatus = "adopted process: manifold is not its parent"

// Signal signals the process group; after the reap it sends nothing.
func (r *dynoRun) Signal(sig syscall.Signal) error { return r.p.signalGroup(sig) }

// Memory measures the process group (one shared scan of /proc serves every dyno).
func (r *dynoRun) Memory(limit int64) (int64, bool) {
	used, members := r.dy.d.mem.usage(r.p.pid, limit)
	r.dy.memSamples.Add(1)
	r.dy.memUsage.Store(used)
	return used, members > 0
}
