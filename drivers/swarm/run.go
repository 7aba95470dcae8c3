package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// ErrRendezvous is wrapped by Run's error when the one-off's task did not connect
// to the rendezvous endpoint in time (or was refused there).
var ErrRendezvous = errors.New("the one-off did not reach the rendezvous endpoint")

// outputDrainTimeout is how long Run waits for the rest of the output once the task
// ended: the connection closes with the task's container.
const outputDrainTimeout = 5 * time.Second

// Run runs a one-off as a service of one task that never restarts, on whichever node
// Swarm picks. The task connects out to the rendezvous endpoint (rendezvous.go); its
// stdin is o.Stdin and its output, stdout and stderr merged, streams to o.Stdout as
// it is written. With o.Terminal the command runs on a pty of that size. The exit
// code is the task's. A task that does not connect within RendezvousTimeout of
// running fails the one-off with ErrRendezvous. Close ends a one-off still running
// with ErrClosed. The service is removed in the end.
func (d *Driver) Run(ctx context.Context, o drivers.OneOff) (int, error) {
	spec := o.DynoSpec
	if err := spec.ValidateForContainers(); err != nil {
		return -1, err
	}
	host, port, hostPort, err := rendezvousAddr(d.opts.RendezvousURL)
	if err != nil {
		return -1, fmt.Errorf("run %s: %w", spec.Ref(), err)
	}
	if err := d.beginCall(); err != nil {
		return -1, fmt.Errorf("run %s: %w", spec.Ref(), err)
	}
	defer d.wg.Done()
	// Close waits for every call, and http.Server.Close leaves the hijacked
	// rendezvous connection open: an interactive one-off would hold Close for as
	// long as its user types. The driver's end ends the wait (and so closes the
	// connection); the service is removed as after any end.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(d.ctx, func() { cancel(ErrClosed) })()
	tmpl, err := d.template(ctx, spec)
	if err != nil {
		return -1, err
	}
	tmpl.spec.Index = spec.Index
	d.mu.Lock()
	d.runSeq++
	name := serviceName(d.opts.Instance, spec) + "-" + strconv.Itoa(spec.Index) + "-" + strconv.Itoa(d.runSeq) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 36)
	d.mu.Unlock()
	want, err := d.serviceSpec(name, tmpl, 1, true)
	if err != nil {
		return -1, err
	}
	token := newRendezvousToken()
	cs := want.TaskTemplate.ContainerSpec
	cs.Command = []string{"/bin/sh", "-c", oneOffBootScript}
	cs.Env = append(cs.Env,
		"MANIFOLD_RENDEZVOUS_TOKEN="+token,
		"MANIFOLD_RENDEZVOUS_URL="+d.opts.RendezvousURL,
		"MANIFOLD_RENDEZVOUS_HOST="+host,
		"MANIFOLD_RENDEZVOUS_PORT="+port,
		"MANIFOLD_RENDEZVOUS_HOSTPORT="+hostPort,
		"MANIFOLD_RENDEZVOUS_SECONDS="+strconv.Itoa(int((d.opts.RendezvousTimeout+time.Second-1)/time.Second)),
	)
	if t := o.Terminal; t != nil {
		cs.Env = append(cs.Env, "MANIFOLD_TTY=1",
			"MANIFOLD_TTY_ROWS="+strconv.Itoa(int(t.Rows)), "MANIFOLD_TTY_COLS="+strconv.Itoa(int(t.Cols)))
	}
	wait := d.rendezvous.expect(token)
	defer d.rendezvous.stop(wait)

	created, err := d.cli.ServiceCreate(ctx, want, swarm.ServiceCreateOptions{})
	if err != nil {
		return -1, fmt.Errorf("run %s: create service: %w", spec.Ref(), err)
	}
	defer func() {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err := d.cli.ServiceRemove(rmCtx, created.ID); err != nil {
			d.log.Warn("remove one-off service", "service", name, "err", err)
		}
	}()
	d.platform(spec, spec.Name(), supervisor.StateChanged(drivers.StateDown, drivers.StateStarting))
	d.platform(spec, spec.Name(), supervisor.Starting(spec.Command))

	watchCtx, stopWatch := context.WithCancel(ctx)
	task := d.watchOneOff(watchCtx, created.ID)
	defer func() { stopWatch(); <-task.stopped }()

	conn, err := d.awaitRendezvous(ctx, o, wait, task, created.ID)
	if err != nil {
		return -1, err
	}
	defer conn.Close()
	d.platform(spec, spec.Name(), supervisor.StateChanged(drivers.StateStarting, drivers.StateUp))

	outputDone := d.stream(conn, o)
	select {
	case <-task.ended:
		select {
		case <-outputDone:
		case <-time.After(outputDrainTimeout):
			d.log.Warn("one-off output did not end after its task", "dyno", spec.Ref())
		}
	case <-outputDone:
		select {
		case <-task.ended:
		case <-ctx.Done():
			return -1, fmt.Errorf("run %s: %w", spec.Ref(), context.Cause(ctx))
		}
	case <-ctx.Done():
		return -1, fmt.Errorf("run %s: %w", spec.Ref(), context.Cause(ctx))
	}
	ended := *task.last
	code := -1
	if cs := ended.Status.ContainerStatus; cs != nil {
		code = cs.ExitCode
	}
	if code < 0 || ended.Status.State == swarm.TaskStateRejected {
		text, _ := reason(ended, spec)
		return -1, fmt.Errorf("run %s: %s", spec.Ref(), text)
	}
	d.platform(spec, spec.Name(), supervisor.Exited(supervisor.Exit{Code: code}))
	d.platform(spec, spec.Name(), supervisor.StateChanged(drivers.StateUp, "complete"))
	return code, nil
}

// awaitRendezvous waits for the one-off's connection. The deadline counts from the
// task running, so that a wait for a node is no failure to connect. A task that ends
// first has its output (the boot script's words) written, and says why.
func (d *Driver) awaitRendezvous(ctx context.Context, o drivers.OneOff, wait *rendezvousWait, task oneOffTask, serviceID string) (net.Conn, error) {
	spec := o.DynoSpec
	timeout := d.opts.RendezvousTimeout
	unreachable := func() error {
		return fmt.Errorf("run %s: %w at %s within %s of its task running: can the nodes reach this URL? (the swarm driver's RendezvousURL, else its SlugURL)",
			spec.Ref(), ErrRendezvous, d.opts.RendezvousURL, timeout)
	}
	var deadline <-chan time.Time
	running := task.running
	for {
		select {
		case conn := <-wait.conns:
			return conn, nil
		case <-running:
			running = nil
			timer := time.NewTimer(timeout)
			defer timer.Stop()
			deadline = timer.C
		case <-deadline:
			return nil, unreachable()
		case <-task.ended:
			// Swarm tells an end long after the task connected: a connection
			// made by then waits in serve.
			select {
			case conn := <-wait.conns:
				return conn, nil
			default:
			}
			ended := *task.last
			if err := d.copyOutput(ctx, serviceID, o.Stdout, o.Stderr); err != nil {
				d.log.Warn("one-off output", "dyno", spec.Ref(), "err", err)
			}
			if cs := ended.Status.ContainerStatus; cs != nil && cs.ExitCode == exitRendezvousFailed {
				return nil, unreachable()
			}
			text, _ := reason(ended, spec)
			return nil, fmt.Errorf("run %s: ended before it connected to the rendezvous endpoint: %s", spec.Ref(), text)
		case <-ctx.Done():
			return nil, fmt.Errorf("run %s: %w", spec.Ref(), context.Cause(ctx))
		}
	}
}

// oneOffTask tells when a one-off's task runs and when it ended.
type oneOffTask struct {
	running <-chan struct{} // closed once the task runs (or ended)
	ended   <-chan struct{} // closed once the task ended; last is set then
	stopped <-chan struct{} // closed when the watch returned
	last    *swarm.Task
}

// watchOneOff polls the service's task until it ended or ctx is done.
func (d *Driver) watchOneOff(ctx context.Context, serviceID string) oneOffTask {
	running, ended, stopped := make(chan struct{}), make(chan struct{}), make(chan struct{})
	last := new(swarm.Task)
	go func() {
		defer close(stopped)
		var once sync.Once
		_ = d.poll(ctx, 24*time.Hour, func(ctx context.Context) (bool, error) {
			tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", serviceID))})
			if err != nil {
				return false, nil // the manager briefly away: ask again
			}
			for _, t := range tasks {
				switch {
				case failed(t) || t.Status.State == swarm.TaskStateShutdown:
					once.Do(func() { close(running) })
					*last = t
					close(ended)
					return true, nil
				case t.Status.State == swarm.TaskStateRunning:
					once.Do(func() { close(running) })
				}
			}
			return false, nil
		})
	}()
	return oneOffTask{running: running, ended: ended, stopped: stopped, last: last}
}

// stream copies o.Stdin to the connection and the connection to o.Stdout until the
// connection ends, which the returned channel tells. Without a terminal the end of
// stdin is passed on (the command reads EOF); on a terminal it is not, as there the
// end of input is a key (^D), and telnetd would end the session. The stdin copier
// ends when its reader does: its owner (the API request) closes it when it ends.
func (d *Driver) stream(conn net.Conn, o drivers.OneOff) <-chan struct{} {
	stdout := o.Stdout
	if stdout == nil {
		stdout = io.Discard
	}
	var writeMu sync.Mutex // the stdin copier and telnet answers share the connection
	write := func(p []byte) error {
		writeMu.Lock()
		defer writeMu.Unlock()
		_, err := conn.Write(p)
		return err
	}
	done := make(chan struct{})
	if o.Terminal == nil {
		go func() {
			defer close(done)
			_, _ = io.Copy(stdout, conn)
		}()
		go func() {
			if o.Stdin != nil {
				_, _ = io.Copy(conn, o.Stdin)
			}
			if cw, ok := conn.(interface{ CloseWrite() error }); ok {
				_ = cw.CloseWrite()
			}
		}()
		return done
	}
	decoder := newTelnetDecoder(*o.Terminal)
	go func() {
		defer close(done)
		buf := make([]byte, 32<<10)
		var data, replies []byte
		stdout := &openingTrimmer{w: stdout, opening: []byte(telnetdOpening)}
		defer stdout.flush()
		for {
			n, err := conn.Read(buf)
			data, replies = decoder.decode(buf[:n], data[:0], replies[:0])
			if len(replies) > 0 && write(replies) != nil {
				return
			}
			if len(data) > 0 {
				if _, werr := stdout.Write(data); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	if o.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			var encoded []byte
			for {
				n, err := o.Stdin.Read(buf)
				if n > 0 {
					encoded = telnetEncode(encoded[:0], buf[:n])
					if write(encoded) != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
	return done
}

// copyOutput writes everything a finished service's task wrote to its own stdout
// and stderr: a one-off's boot script's words when it never connected.
func (d *Driver) copyOutput(ctx context.Context, serviceID string, stdout, stderr io.Writer) error {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	rc, err := d.cli.ServiceLogs(ctx, serviceID, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = stdcopy.StdCopy(stdout, stderr, rc)
	return err
}
