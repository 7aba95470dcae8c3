package swarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// ErrAttachUnsupported is Run's error for a one-off with a terminal or with data on
// stdin: a Swarm task cannot be attached to through the manager. The words name the
// CLI's flags, as this is what the user of `manifold run` reads.
var ErrAttachUnsupported = errors.New("swarm one-offs take no stdin and no terminal (manifold run --no-tty --no-stdin)")

// emptyStdin reads stdin until its end, and refuses it when it holds data: the task
// cannot be given it, and dropping it would run a command without its input. An
// empty stdin (</dev/null, a script's, the CLI's under CI) is the same as none.
func emptyStdin(ctx context.Context, stdin io.Reader) error {
	result := make(chan error, 1)
	go func() {
		var b [1]byte
		for {
			n, err := stdin.Read(b[:])
			switch {
			case n > 0:
				result <- ErrAttachUnsupported
				return
			case errors.Is(err, io.EOF):
				result <- nil
				return
			case err != nil:
				result <- fmt.Errorf("read stdin: %w", err)
				return
			}
		}
	}()
	// A stdin that never ends (a terminal) is read until the caller gives up; the
	// reader's owner (the API request) closes it then, which ends the goroutine.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-result:
		return err
	}
}

// Run runs a one-off as a service of one task that never restarts, on whichever node
// Swarm picks, waits for it to end and passes its exit code through. Its output is
// written to Stdout and Stderr once it ended (the manager's log of the task); the
// service is removed then.
func (d *Driver) Run(ctx context.Context, o drivers.OneOff) (int, error) {
	spec := o.DynoSpec
	if o.Terminal != nil {
		return -1, fmt.Errorf("run %s: %w", spec.Ref(), ErrAttachUnsupported)
	}
	if o.Stdin != nil {
		if err := emptyStdin(ctx, o.Stdin); err != nil {
			return -1, fmt.Errorf("run %s: %w", spec.Ref(), err)
		}
	}
	if err := spec.ValidateForContainers(); err != nil {
		return -1, err
	}
	if err := d.beginCall(); err != nil {
		return -1, fmt.Errorf("run %s: %w", spec.Ref(), err)
	}
	defer d.wg.Done()
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

	var ended swarm.Task
	err = d.poll(ctx, 24*time.Hour, func(ctx context.Context) (bool, error) {
		tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(filters.Arg("service", created.ID))})
		if err != nil {
			return false, nil // the manager briefly away: ask again
		}
		for _, t := range tasks {
			if failed(t) || t.Status.State == swarm.TaskStateShutdown {
				ended = t
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return -1, fmt.Errorf("run %s: wait: %w", spec.Ref(), err)
	}
	if err := d.copyOutput(ctx, created.ID, o.Stdout, o.Stderr); err != nil {
		d.log.Warn("one-off output", "dyno", spec.Ref(), "err", err)
	}
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

// copyOutput writes everything a finished service's task wrote.
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
