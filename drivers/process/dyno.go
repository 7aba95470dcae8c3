package process

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

// dyno is one supervised dyno: its record, its current process, its output follower.
// The supervise goroutine owns the process and every state change; Stop, List and
// Close talk to it through stopReq, snapshot and the driver's context.
type dyno struct {
	d         *Driver
	id        string
	spec      drivers.DynoSpec
	statePath string
	logPath   string
	fl        *follower
	stopReq   chan struct{} // closed by Stop
	stopOnce  sync.Once
	done      chan struct{} // closed when supervise returns (stopped, or the driver closed)
	// memSamples counts the memory watcher's samples and memUsage holds the last, in
	// bytes (tests and, later, metrics read them).
	memSamples atomic.Int64
	memUsage   atomic.Int64

	mu          sync.Mutex
	rec         drivers.Dyno
	port        int
	pid         int
	startTime   uint64
	crashes     int
	nextRestart time.Time
	stopped     bool

	persistMu sync.Mutex
	removed   bool // the state and output files are gone: never write them again
}

func (d *Driver) newDyno(id string, spec drivers.DynoSpec, logOffset int64) *dyno {
	dy := &dyno{
		d:         d,
		id:        id,
		spec:      spec,
		statePath: filepath.Join(d.opts.StateDir, id+".json"),
		logPath:   filepath.Join(d.opts.StateDir, id+".log"),
		stopReq:   make(chan struct{}),
		done:      make(chan struct{}),
		rec:       drivers.Dyno{ID: id, Spec: spec, Name: spec.Name()},
	}
	dy.fl = newFollower(dy.logPath, logOffset, d.opts.MaxLineBytes, d.opts.MaxLogBytes, dy.appLine,
		func(msg string, err error) { d.log.Error(msg, "dyno", id, "file", dy.logPath, "err", err) })
	return dy
}

// snapshot is the dyno's record as List reports it.
func (dy *dyno) snapshot() drivers.Dyno {
	dy.mu.Lock()
	defer dy.mu.Unlock()
	rec := dy.rec
	rec.Spec.Config = cloneConfig(rec.Spec.Config)
	return rec
}

func cloneConfig(config map[string]string) map[string]string {
	if config == nil {
		return nil
	}
	out := make(map[string]string, len(config))
	for k, v := range config {
		out[k] = v
	}
	return out
}

func (dy *dyno) isStopped() bool {
	dy.mu.Lock()
	defer dy.mu.Unlock()
	return dy.stopped
}

// now is a log line's time: microseconds, as logplex keeps them.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// appLine publishes a line of the dyno's output.
func (dy *dyno) appLine(text string) {
	dy.d.sink.Publish(logs.Line{Time: now(), App: dy.spec.App, Env: dy.spec.Env, Source: logs.SourceApp, Dyno: dy.rec.Name, Text: text})
}

// heroku publishes a platform line about the dyno, worded as Heroku's dyno manager.
func (dy *dyno) heroku(format string, args ...any) {
	dy.d.sink.Publish(logs.Line{Time: now(), App: dy.spec.App, Env: dy.spec.Env, Source: logs.SourceHeroku, Dyno: dy.rec.Name, Text: fmt.Sprintf(format, args...)})
}

// setState records a state change, logs Heroku's "State changed" line, emits the
// event and saves the state file.
func (dy *dyno) setState(to drivers.State, reason, code string) {
	dy.mu.Lock()
	from := dy.rec.State
	dy.rec.State = to
	dy.rec.StateChangedAt = now()
	dy.rec.Reason = reason
	rec := dy.rec
	rec.Spec.Config = cloneConfig(rec.Spec.Config)
	dy.mu.Unlock()
	if from != to {
		dy.heroku("State changed from %s to %s", from, to)
	}
	dy.d.events.push(drivers.Event{Dyno: rec, From: from, To: to, Code: code})
	if err := dy.persist(); err != nil {
		dy.d.log.Error("save dyno state", "dyno", dy.id, "err", err)
	}
}

func (dy *dyno) setAddr() {
	dy.mu.Lock()
	defer dy.mu.Unlock()
	dy.rec.Addr = ""
	if dy.spec.Type == "web" && dy.port > 0 {
		dy.rec.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(dy.port))
	}
}

// persist writes the state file (unless the dyno is gone).
func (dy *dyno) persist() error {
	dy.persistMu.Lock()
	defer dy.persistMu.Unlock()
	if dy.removed {
		return nil
	}
	dy.mu.Lock()
	st := stateFile{
		ID: dy.id, Spec: dy.spec, PID: dy.pid, StartTime: dy.startTime, Port: dy.port,
		State: dy.rec.State, Reason: dy.rec.Reason, StartedAt: dy.rec.StartedAt,
		StateChangedAt: dy.rec.StateChangedAt, Restarts: dy.rec.Restarts,
		Crashes: dy.crashes, NextRestartAt: dy.nextRestart,
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

// launch starts the dyno's process with its output appended to the dyno's file.
func (dy *dyno) launch(ctx context.Context) (*proc, error) {
	d := dy.d
	name := dy.rec.Name
	fail := func(err error) (*proc, error) {
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

	dy.mu.Lock()
	if dy.rec.State == drivers.StateCrashed {
		dy.rec.Restarts++
	}
	dy.port = port
	dy.mu.Unlock()
	dy.setAddr()
	dy.setState(drivers.StateStarting, "", "")
	dy.heroku("Starting process with command `%s`", dy.spec.Command)
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
		dy.heroku("Error starting process: %v", err)
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
	dy.pid, dy.startTime = pid, startTime
	dy.rec.StartedAt = now()
	dy.mu.Unlock()
	if err := dy.persist(); err != nil {
		d.log.Error("save dyno state", "dyno", dy.id, "err", err)
	}
	d.log.Info("dyno process started", "dyno", dy.id, "pid", pid, "port", port)
	return newProc(pid, startTime), nil
}

// supervise runs the dyno until it is stopped (it removes it then) or the driver
// closes (it leaves the process running). p is the running process, or nil when the
// dyno is crashed and waits for its cool-off.
func (dy *dyno) supervise(ctx context.Context, p *proc) {
	defer close(dy.done)
	for {
		if p == nil {
			var ok bool
			if p, ok = dy.restart(ctx); !ok {
				return
			}
			if p == nil {
				continue
			}
		}
		if !dy.run(ctx, p) {
			return
		}
		p = nil
	}
}

// restart waits out the cool-off and starts the process again. ok is false when the
// dyno was stopped or the driver closed meanwhile; p is nil when the start failed
// (the dyno is crashed again).
func (dy *dyno) restart(ctx context.Context) (p *proc, ok bool) {
	dy.mu.Lock()
	wait := time.Until(dy.nextRestart)
	dy.mu.Unlock()
	timer := time.NewTimer(max(wait, 0))
	defer timer.Stop()
	select {
	case <-timer.C:
	case <-dy.stopReq:
		dy.down("")
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
	p, err := dy.launch(ctx)
	if err != nil {
		dy.d.log.Error("restart dyno", "dyno", dy.id, "err", err)
		dy.crashed(err.Error(), "")
		return nil, true
	}
	return p, true
}

type exitResult struct {
	status exitStatus
	err    error
}

// run watches a running process until it exits (true: crashed, restart it), is
// stopped or the driver closes (false).
func (dy *dyno) run(ctx context.Context, p *proc) bool {
	watchCtx, cancelWatch := context.WithCancel(context.Background())
	defer cancelWatch()
	exited := make(chan exitResult, 1)
	dy.d.wg.Go(func() {
		status, err := p.wait(watchCtx)
		exited <- exitResult{status, err}
	})
	mw := dy.watchMemory(watchCtx, p)

	dy.mu.Lock()
	state := dy.rec.State
	dy.mu.Unlock()
	if state != drivers.StateUp {
		switch outcome, result := dy.boot(ctx, exited); outcome {
		case bootUp:
			dy.setState(drivers.StateUp, "", "")
		case bootExited:
			dy.exited(p, result, mw)
			return true
		case bootTimedOut, bootUnhealthy:
			dy.bootTimeout(p, exited, outcome)
			return true
		case bootStop:
			dy.stop(p, exited)
			return false
		case bootClosed:
			return false
		}
	}
	select {
	case result := <-exited:
		dy.exited(p, result, mw)
		return true
	case <-dy.stopReq:
		dy.stop(p, exited)
		return false
	case <-ctx.Done():
		return false
	}
}

type bootOutcome int

const (
	bootUp bootOutcome = iota
	bootExited
	bootTimedOut  // never bound $PORT
	bootUnhealthy // bound, never answered the health check
	bootStop
	bootClosed
)

// Boot probing: fast at first (BenchmarkStartToUp), then gentler.
const (
	bootProbeFirst = 2 * time.Millisecond
	bootProbeMax   = 100 * time.Millisecond
	bootDialMax    = 250 * time.Millisecond
	healthTimeout  = 2 * time.Second
)

// boot waits for the dyno to be up: a web dyno accepts a TCP connection on its port
// (and answers its health check with 2xx) within BootTimeout of its start; other
// dynos are up once running.
func (dy *dyno) boot(ctx context.Context, exited <-chan exitResult) (bootOutcome, exitResult) {
	if dy.spec.Type != "web" {
		return bootUp, exitResult{}
	}
	dy.mu.Lock()
	deadline := dy.rec.StartedAt.Add(dy.d.opts.BootTimeout)
	addr := dy.rec.Addr
	dy.mu.Unlock()
	var client *http.Client
	if dy.spec.HealthCheck != "" {
		client = &http.Client{Timeout: healthTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
		defer client.CloseIdleConnections()
	}
	bound := false
	interval := bootProbeFirst
	for {
		if !bound {
			if conn, err := net.DialTimeout("tcp", addr, bootDialMax); err == nil {
				conn.Close()
				bound = true
			}
		}
		if bound && (client == nil || healthy(ctx, client, addr, dy.spec.HealthCheck)) {
			return bootUp, exitResult{}
		}
		left := time.Until(deadline)
		if left <= 0 {
			if bound {
				return bootUnhealthy, exitResult{}
			}
			return bootTimedOut, exitResult{}
		}
		timer := time.NewTimer(min(interval, left))
		select {
		case result := <-exited:
			timer.Stop()
			return bootExited, result
		case <-dy.stopReq:
			timer.Stop()
			return bootStop, exitResult{}
		case <-ctx.Done():
			timer.Stop()
			return bootClosed, exitResult{}
		case <-timer.C:
		}
		interval = min(interval*2, bootProbeMax)
	}
}

func healthy(ctx context.Context, client *http.Client, addr, path string) bool {
	if path == "" || path[0] != '/' {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// seconds words a duration as Heroku does: "60 seconds".
func seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + " seconds"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " seconds"
}

// bootTimeout is R10: kill the dyno that did not boot in time; it crashes.
func (dy *dyno) bootTimeout(p *proc, exited <-chan exitResult, outcome bootOutcome) {
	within := seconds(dy.d.opts.BootTimeout)
	if outcome == bootUnhealthy {
		dy.heroku("Error R10 (Boot timeout) -> Web process did not answer GET %s with 2xx within %s of launch", dy.spec.HealthCheck, within)
	} else {
		dy.heroku("Error R10 (Boot timeout) -> Web process failed to bind to $PORT within %s of launch", within)
	}
	dy.heroku("Stopping process with SIGKILL")
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		dy.d.log.Error("kill dyno after R10", "dyno", dy.id, "err", err)
	}
	result := <-exited
	dy.fl.pump(true)
	dy.heroku("Process exited with %s", result.status)
	dy.crashed("Error R10 (Boot timeout)", "R10")
}

// exited handles a process that ended on its own, or that the memory watcher killed
// past the hard limit (R15): a crash.
func (dy *dyno) exited(p *proc, result exitResult, mw *memWatch) {
	if result.err != nil {
		dy.d.log.Error("watch dyno process", "dyno", dy.id, "err", result.err)
	}
	// What the leader started died with it (proc.wait), as a dyno is one container
	// on Heroku. Signalling the group here, after the reap, could hit a reused pid.
	dy.fl.pump(true)
	text := "Process exited with " + result.status.String()
	dy.heroku("%s", text)
	if mw.hardKilled.Load() {
		dy.crashed(msgR15, "R15")
		return
	}
	dy.crashed(text, "")
}

// crashed records a crash and schedules the restart after the cool-off.
func (dy *dyno) crashed(reason, code string) {
	dy.mu.Lock()
	// A dyno that stayed up long enough starts its crash count afresh.
	if dy.rec.State == drivers.StateUp && time.Since(dy.rec.StateChangedAt) >= dy.d.opts.StableAfter {
		dy.crashes = 0
	}
	dy.crashes++
	wait := dy.d.opts.Cooloff(dy.crashes)
	dy.nextRestart = time.Now().Add(wait)
	port := dy.port
	dy.port, dy.pid, dy.startTime = 0, 0, 0
	crashes := dy.crashes
	dy.mu.Unlock()
	dy.d.ports.release(port)
	dy.setAddr()
	dy.d.log.Warn("dyno crashed", "dyno", dy.id, "reason", reason, "crashes", crashes, "restart_in", wait)
	dy.setState(drivers.StateCrashed, reason, code)
}

// stop is Heroku's stop: SIGTERM to every process, the grace, SIGKILL to what is left.
func (dy *dyno) stop(p *proc, exited <-chan exitResult) {
	grace := dy.spec.StopTimeout
	if grace <= 0 {
		grace = DefaultStopTimeout
	}
	dy.heroku("Stopping all processes with SIGTERM")
	if err := p.signalGroup(syscall.SIGTERM); err != nil {
		dy.d.log.Error("stop dyno", "dyno", dy.id, "err", err)
	}
	code := ""
	timer := time.NewTimer(grace)
	defer timer.Stop()
	var result exitResult
	select {
	case result = <-exited:
	case <-timer.C:
		code = "R12"
		dy.heroku("Error R12 (Exit timeout) -> At least one process failed to exit within %s of SIGTERM", seconds(grace))
		dy.heroku("Stopping remaining processes with SIGKILL")
		if err := p.signalGroup(syscall.SIGKILL); err != nil {
			dy.d.log.Error("kill dyno", "dyno", dy.id, "err", err)
		}
		result = <-exited
	}
	// proc.wait killed the children that outlived the leader before reaping it.
	dy.fl.pump(true)
	dy.heroku("Process exited with %s", result.status)
	dy.down(code)
}

// down ends a stopped dyno: out of List, files removed, then the event.
func (dy *dyno) down(code string) {
	dy.mu.Lock()
	dy.stopped = true
	port := dy.port
	dy.port, dy.pid = 0, 0
	dy.mu.Unlock()
	dy.d.ports.release(port)
	dy.d.remove(dy.id)
	dy.fl.close()
	dy.removeFiles()
	dy.setState(drivers.StateDown, "", code)
}
