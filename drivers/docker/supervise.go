package docker

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/manifold-paas/manifold/drivers"
)

// Heroku's platform messages.
const (
	msgR15 = "Error R15 (Memory quota vastly exceeded)"
)

// probeInterval is how often a starting web dyno's port is tried.
const probeInterval = 5 * time.Millisecond

// crashResetAfter: a dyno that ran this long before crashing starts its cool-off over.
const crashResetAfter = 20 * time.Minute

type outcomeKind int

const (
	outcomeNone    outcomeKind = iota
	outcomeStopped             // Stop or Close: the supervisor ends
	outcomeExited              // the container exited on its own (or was killed for R10)
	outcomeRemoved             // the container is gone: removed from outside
)

// outcome is how a run of a dyno's container ended.
type outcome struct {
	kind   outcomeKind
	status int    // exit status
	oom    bool   // the kernel's OOM killer struck (R15)
	code   string // R10 when the driver killed it for not binding $PORT
}

// supervise owns a dyno's life until Stop or Close: it watches the container, and
// restarts it after a crash (with the cool-off) or replaces it when it was removed.
// first is how the container's previous run ended (adoption of an exited container).
func (d *Driver) supervise(dy *dyno, first outcome) {
	defer close(dy.done)
	res := first
	for {
		if res.kind == outcomeNone {
			res = d.watch(dy)
		}
		switch res.kind {
		case outcomeExited:
			res = d.crashed(dy, res)
		case outcomeRemoved:
			res = d.replace(dy)
		default:
			return
		}
	}
}

// watch follows a running container: the boot check of a starting dyno, then kicks
// from the event stream and relists until the container exits or is gone.
func (d *Driver) watch(dy *dyno) outcome {
	d.mu.Lock()
	state, addr, startedAt := dy.state, dy.addr, dy.startedAt
	d.mu.Unlock()
	if state == drivers.StateStarting {
		if dy.spec.Type != "web" {
			d.setState(dy, drivers.StateUp, "", "")
		} else if res, up := d.boot(dy, addr, startedAt); !up {
			return res
		}
	}
	for {
		select {
		case <-dy.ctx.Done():
			return outcome{kind: outcomeStopped}
		case <-dy.kick:
			if res := d.check(dy); res.kind != outcomeNone {
				return res
			}
		}
	}
}

// check inspects the dyno's container after a kick.
func (d *Driver) check(dy *dyno) outcome {
	d.mu.Lock()
	id := dy.id
	d.mu.Unlock()
	info, err := d.cli.ContainerInspect(dy.ctx, id)
	switch {
	case dy.ctx.Err() != nil:
		return outcome{kind: outcomeStopped}
	case cerrdefs.IsNotFound(err):
		return outcome{kind: outcomeRemoved}
	case err != nil:
		// The engine is unreachable; the relist after reconnecting kicks again.
		d.log.Warn("inspect container", "dyno", dynoRef(dy.spec), "container", id, "err", err)
		return outcome{}
	case info.State.Running || info.State.Restarting:
		return outcome{}
	}
	oom := info.State.OOMKilled
	if !oom && info.State.ExitCode == 137 {
		oom = d.lateOOM(dy.ctx, id)
	}
	return outcome{kind: outcomeExited, status: info.State.ExitCode, oom: oom}
}

// oomGrace is how long lateOOM waits for the engine to flag an OOM kill.
const oomGrace = time.Second

// lateOOM tells whether the engine flags a container that exited with SIGKILL as OOM
// killed within oomGrace. The engine learns of the OOM kill from containerd's event,
// which can arrive after the exit event under load: the first inspect then says
// OOMKilled false for what was an R15.
func (d *Driver) lateOOM(ctx context.Context, id string) bool {
	deadline := time.Now().Add(oomGrace)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
		info, err := d.cli.ContainerInspect(ctx, id)
		if err != nil {
			return false
		}
		if info.State.OOMKilled {
			return true
		}
	}
	return false
}

// boot waits for a web dyno to accept connections on $PORT (and answer its health
// check) within the boot timeout; else R10: the container is killed and crashed.
func (d *Driver) boot(dy *dyno, addr string, startedAt time.Time) (outcome, bool) {
	deadline := time.NewTimer(time.Until(startedAt.Add(d.opts.BootTimeout)))
	defer deadline.Stop()
	tick := time.NewTicker(probeInterval)
	defer tick.Stop()
	for {
		if addr != "" && d.probe(dy.ctx, addr, dy.spec.HealthCheck) {
			d.mu.Lock()
			dy.addr = addr
			d.mu.Unlock()
			d.setState(dy, drivers.StateUp, "", "")
			return outcome{}, true
		}
		select {
		case <-dy.ctx.Done():
			return outcome{kind: outcomeStopped}, false
		case <-dy.kick:
			if res := d.check(dy); res.kind != outcomeNone {
				return res, false
			}
		case <-tick.C:
		case <-deadline.C:
			secs := int(d.opts.BootTimeout.Round(time.Second) / time.Second)
			d.platform(dy.spec, dy.spec.Name(), fmt.Sprintf("Error R10 (Boot timeout) -> Web process failed to bind to $PORT within %d seconds of launch", secs))
			d.platform(dy.spec, dy.spec.Name(), "Stopping process with SIGKILL")
			res := d.kill(dy)
			if res.kind == outcomeExited {
				res.code = "R10"
			}
			return res, false
		}
	}
}

// probe reports whether addr accepts a TCP connection and, with a health check path,
// answers it with 2xx.
func (d *Driver) probe(ctx context.Context, addr, healthCheck string) bool {
	dialer := net.Dialer{Timeout: 200 * time.Millisecond}
	conn, err := dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	if healthCheck == "" {
		return true
	}
	reqCtx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, "http://"+addr+healthCheck, nil)
	if err != nil {
		return false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode >= 200 && resp.StatusCode < 300
}

// kill sends SIGKILL and waits (bounded) for the container to exit.
func (d *Driver) kill(dy *dyno) outcome {
	d.mu.Lock()
	id := dy.id
	d.mu.Unlock()
	if err := d.cli.ContainerKill(dy.ctx, id, "SIGKILL"); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("kill container", "dyno", dynoRef(dy.spec), "err", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if res := d.check(dy); res.kind != outcomeNone {
			return res
		}
		select {
		case <-dy.ctx.Done():
			return outcome{kind: outcomeStopped}
		case <-time.After(50 * time.Millisecond):
		}
	}
	return outcome{kind: outcomeExited, status: 137}
}

// crashed logs a run that ended on its own, waits the cool-off and starts the same
// container again (its /app is kept). It returns the next outcome to handle.
func (d *Driver) crashed(dy *dyno, res outcome) outcome {
	code, reason := res.code, fmt.Sprintf("Process exited with status %d", res.status)
	if res.oom && code == "" {
		code, reason = "R15", msgR15
		d.platform(dy.spec, dy.spec.Name(), msgR15)
	}
	if code == "R10" {
		reason = "Error R10 (Boot timeout)"
	}
	if res.code != "restart" {
		d.platform(dy.spec, dy.spec.Name(), fmt.Sprintf("Process exited with status %d", res.status))
	} else {
		code, reason = "", "Restart failed"
	}
	d.mu.Lock()
	if time.Since(dy.startedAt) > crashResetAfter {
		dy.crashes = 0
	}
	dy.crashes++
	crashes := dy.crashes
	d.mu.Unlock()
	d.setState(dy, drivers.StateCrashed, code, reason)

	wait := d.opts.Cooloff(crashes)
	if wait > 0 {
		timer := time.NewTimer(wait)
		select {
		case <-dy.ctx.Done():
			timer.Stop()
			return outcome{kind: outcomeStopped}
		case <-timer.C:
		}
	}
	if dy.ctx.Err() != nil {
		return outcome{kind: outcomeStopped}
	}
	// Drain kicks about the run that just ended.
	select {
	case <-dy.kick:
	default:
	}
	d.mu.Lock()
	dy.restarts++
	d.mu.Unlock()
	d.setState(dy, drivers.StateStarting, "", "")
	if err := d.startContainer(dy.ctx, dy); err != nil {
		if dy.ctx.Err() != nil {
			return outcome{kind: outcomeStopped}
		}
		if cerrdefs.IsNotFound(err) {
			return outcome{kind: outcomeRemoved}
		}
		d.log.Warn("restart crashed dyno", "dyno", dynoRef(dy.spec), "err", err)
		d.platform(dy.spec, dy.spec.Name(), "Restart failed: "+err.Error())
		return outcome{kind: outcomeExited, status: -1, code: "restart"}
	}
	return outcome{}
}

// replace starts a new container for a dyno whose container was removed from outside.
func (d *Driver) replace(dy *dyno) outcome {
	d.mu.Lock()
	oldID, oldName := dy.id, dy.container
	d.mu.Unlock()
	d.platform(dy.spec, dy.spec.Name(), fmt.Sprintf("Container %s (%s) was removed outside manifold; starting a replacement", oldName, short(oldID)))
	d.log.Warn("dyno container removed from outside; replacing it", "dyno", dynoRef(dy.spec), "container", oldID)
	d.logState.forget(oldID)
	d.setState(dy, drivers.StateCrashed, "", "Container removed outside manifold")
	for attempt := 1; ; attempt++ {
		labels, err := d.dynoLabels(dy.spec)
		if err != nil {
			return outcome{kind: outcomeStopped}
		}
		if dy.ctx.Err() != nil {
			return outcome{kind: outcomeStopped}
		}
		// The driver's context, not the dyno's: a Stop racing with the create must
		// find the new container registered, not a half-made one left behind.
		id, name, err := d.createDynoContainer(d.ctx, dy.spec, labels, nil)
		if err == nil {
			d.rekey(dy, id, name)
			d.mu.Lock()
			dy.volume = labels[LabelVolume]
			dy.logDone = nil
			dy.restarts++
			d.mu.Unlock()
			d.setState(dy, drivers.StateStarting, "", "")
			if err = d.startContainer(dy.ctx, dy); err == nil {
				return outcome{}
			}
		}
		d.log.Warn("replace dyno container", "dyno", dynoRef(dy.spec), "attempt", attempt, "err", err)
		timer := time.NewTimer(max(d.opts.Cooloff(attempt+1), time.Second))
		select {
		case <-dy.ctx.Done():
			timer.Stop()
			return outcome{kind: outcomeStopped}
		case <-timer.C:
		}
		// A container made by a failed attempt is registered; check it first.
		d.mu.Lock()
		registered := dy.id != oldID
		d.mu.Unlock()
		if registered {
			return d.check(dy)
		}
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// stopContainerTimeout is the SIGTERM grace in whole seconds, as the engine takes it.
func stopSeconds(spec drivers.DynoSpec) int {
	t := spec.StopTimeout
	if t <= 0 {
		t = defaultStopTimeout
	}
	return int((t + time.Second - 1) / time.Second)
}
