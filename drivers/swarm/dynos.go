package swarm

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
)

// stopWaitExtra is how long Stop waits past the dyno's grace for Swarm to report
// the task gone.
const stopWaitExtra = 20 * time.Second

// template resolves what a spec's tasks share: the stack's image ID and the slug's
// digest and URL (the slug becomes servable).
func (d *Driver) template(ctx context.Context, spec drivers.DynoSpec) (template, error) {
	image, err := d.stackImage(ctx, spec.Stack)
	if err != nil {
		return template{}, fmt.Errorf("start %s: %w", spec.Ref(), err)
	}
	sha, err := d.slugs.add(spec.SlugPath)
	if err != nil {
		return template{}, fmt.Errorf("start %s: %w", spec.Ref(), err)
	}
	spec.Stack = image
	spec.Index = 0
	return template{spec: spec, slugSHA: sha, slugURL: d.opts.SlugURL + "/slugs/" + sha}, nil
}

// Start makes sure the process type's service runs the spec's release with at least
// spec.Index replicas and returns the dyno starting. A spec that differs from the
// service's (a release, a config change) is one rolling service update: start-first,
// one task at a time, rolled back when a task fails; further Starts of the same
// release change nothing. Events tells when the dyno is up.
func (d *Driver) Start(ctx context.Context, spec drivers.DynoSpec) (drivers.Dyno, error) {
	if err := spec.ValidateForContainers(); err != nil {
		return drivers.Dyno{}, err
	}
	if err := d.beginCall(); err != nil {
		return drivers.Dyno{}, fmt.Errorf("start %s: %w", spec.Ref(), err)
	}
	defer d.wg.Done()
	tmpl, err := d.template(ctx, spec)
	if err != nil {
		return drivers.Dyno{}, err
	}
	if spec.Type == "web" {
		d.awaitGuard(ctx) // a web task publishes a port: not before the node filters it
	}
	name := serviceName(d.opts.Instance, spec)
	d.ops.Lock()
	defer d.ops.Unlock()
	if err := retryOutOfSequence(ctx, func() error { return d.ensureService(ctx, name, tmpl, spec) }); err != nil {
		return drivers.Dyno{}, err
	}
	d.followLogs(name)
	spec.Stack = tmpl.spec.Stack
	return drivers.Dyno{
		ID: dynoID(name, spec.Release, spec.Index), Spec: spec, Name: spec.Name(),
		State: drivers.StateStarting, StartedAt: time.Now(), StateChangedAt: time.Now(),
	}, nil
}

// retryOutOfSequence retries a read-modify-write of a service that the manager
// itself changed in between (it does, once, right after a create): Swarm answers
// "update out of sequence".
func retryOutOfSequence(ctx context.Context, update func() error) error {
	for attempt := 1; ; attempt++ {
		err := update()
		if err == nil || attempt == maxUpdateAttempts || !strings.Contains(err.Error(), "update out of sequence") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
		}
	}
}

const maxUpdateAttempts = 5

// ensureService creates the process type's service or updates it to tmpl with at
// least spec.Index replicas.
func (d *Driver) ensureService(ctx context.Context, name string, tmpl template, spec drivers.DynoSpec) error {
	svc, _, err := d.cli.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		want, err := d.serviceSpec(name, tmpl, uint64(spec.Index), false)
		if err != nil {
			return err
		}
		if _, err := d.cli.ServiceCreate(ctx, want, swarm.ServiceCreateOptions{}); err != nil {
			return fmt.Errorf("start %s: create service %s: %w", spec.Ref(), name, err)
		}
		d.log.Info("service created", "service", name, "release", spec.Release, "replicas", spec.Index)
	case err != nil:
		return fmt.Errorf("start %s: inspect service %s: %w", spec.Ref(), name, err)
	default:
		replicas := uint64(0)
		if r := svc.Spec.Mode.Replicated; r != nil && r.Replicas != nil {
			replicas = *r.Replicas
		}
		replicas = max(replicas, uint64(spec.Index))
		want, err := d.serviceSpec(name, tmpl, replicas, false)
		if err != nil {
			return err
		}
		update := svc.Spec
		if !sameTemplate(svc.Spec, want) {
			update = want // one rolling update to the new release or config
		} else if replicas == *svc.Spec.Mode.Replicated.Replicas {
			break // already runs this release with this many replicas
		}
		update.Mode = want.Mode
		if _, err := d.cli.ServiceUpdate(ctx, svc.ID, svc.Version, update, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("start %s: update service %s: %w", spec.Ref(), name, err)
		}
		d.log.Info("service updated", "service", name, "release", spec.Release, "replicas", replicas)
	}
	return nil
}

// sameTemplate says whether a service already runs what want describes.
func sameTemplate(have, want swarm.ServiceSpec) bool {
	hc, wc := have.TaskTemplate.ContainerSpec, want.TaskTemplate.ContainerSpec
	if hc == nil || wc == nil {
		return false
	}
	return have.Labels[LabelSpec] == want.Labels[LabelSpec] &&
		have.Labels[LabelSlug] == want.Labels[LabelSlug] &&
		slices.Equal(hc.Env, wc.Env) && hc.Image == wc.Image
}

// Stop scales the dyno's service down by one and waits until Swarm stopped a task
// (SIGTERM, the grace, SIGKILL). A dyno of an older release than the service's is
// being replaced by the service's update, which stops it: Stop returns at once.
func (d *Driver) Stop(ctx context.Context, id string) error {
	name, release, _, ok := parseDynoID(id)
	if !ok {
		return fmt.Errorf("stop %s: %w", id, ErrUnknownDyno)
	}
	if err := d.beginCall(); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	defer d.wg.Done()
	var (
		svc      swarm.Service
		tmpl     drivers.DynoSpec
		replicas uint64
		scaled   bool
	)
	d.ops.Lock()
	err := retryOutOfSequence(ctx, func() error {
		var err error
		svc, _, err = d.cli.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
		if cerrdefs.IsNotFound(err) || (err == nil && svc.Spec.Labels[LabelInstance] != d.opts.Instance) {
			return fmt.Errorf("stop %s: %w", id, ErrUnknownDyno)
		}
		if err != nil {
			return fmt.Errorf("stop %s: inspect service: %w", id, err)
		}
		if tmpl, err = specOf(svc.Spec); err != nil {
			return fmt.Errorf("stop %s: %w", id, err)
		}
		if release != tmpl.Release || svc.Spec.Mode.Replicated == nil || *svc.Spec.Mode.Replicated.Replicas == 0 {
			return nil // an older release: the service's update stops it
		}
		replicas = *svc.Spec.Mode.Replicated.Replicas - 1
		update := svc.Spec
		update.Mode = swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}}
		if _, err := d.cli.ServiceUpdate(ctx, svc.ID, svc.Version, update, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("stop %s: scale service %s to %d: %w", id, name, replicas, err)
		}
		scaled = true
		return nil
	})
	d.ops.Unlock()
	if err != nil || !scaled {
		return err
	}
	grace := tmpl.StopTimeout
	if grace <= 0 {
		grace = defaultStopGrace
	}
	return d.poll(ctx, grace+stopWaitExtra, func(ctx context.Context) (bool, error) {
		tasks, err := d.runningTasks(ctx, svc.ID)
		return err == nil && tasks <= int(replicas), nil
	})
}

// runningTasks counts a service's tasks that are not yet stopped.
func (d *Driver) runningTasks(ctx context.Context, serviceID string) (int, error) {
	obs, err := d.observe(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, t := range obs.tasks[serviceID] {
		switch t.Status.State {
		case swarm.TaskStateRunning, swarm.TaskStateStarting, swarm.TaskStatePreparing,
			swarm.TaskStateAssigned, swarm.TaskStateAccepted, swarm.TaskStateReady:
			n++
		}
	}
	return n, nil
}

// adopt takes over the services a previous daemon left: their slugs become
// servable again and their logs are followed; no service is updated.
func (d *Driver) adopt(ctx context.Context) error {
	obs, err := d.observe(ctx)
	if err != nil {
		return fmt.Errorf("swarm driver: adopt: %w", err)
	}
	for _, svc := range obs.services {
		spec, err := specOf(svc.Spec)
		if err != nil {
			d.log.Warn("adopt: service skipped", "service", svc.Spec.Name, "err", err)
			continue
		}
		d.slugs.register(svc.Spec.Labels[LabelSlug], spec.SlugPath)
		d.followLogs(svc.Spec.Name)
	}
	dynos, names := d.dynos(obs)
	d.mu.Lock()
	d.last = map[string]drivers.Dyno{}
	for _, dyno := range dynos {
		d.last[dyno.ID] = dyno
	}
	d.taskNames = names
	d.current = currentTasks(names)
	d.ran = currentTasks(names)
	d.mu.Unlock()
	d.log.Info("adopted services", "count", len(obs.services))
	return nil
}

// poll calls check until it is done, fails, or timeout passes: the package's one
// polling helper.
func (d *Driver) poll(ctx context.Context, timeout time.Duration, check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		done, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done within %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}

const pollInterval = 200 * time.Millisecond
