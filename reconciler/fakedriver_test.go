package reconciler_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// fakeDriver runs no process: a dyno is up as soon as it starts, unless its command
// contains "never-binds" (it stays starting, as a web dyno that misses $PORT).
// One-offs exit with the number after "exit " in their command, or run until their
// ctx ends when it contains "hang". It serves the
// reconciler's unit tests only; drivers have their own tests against the real thing.
type fakeDriver struct {
	mu      sync.Mutex
	next    int
	dynos   map[string]*drivers.Dyno
	runs    []drivers.DynoSpec
	events  chan drivers.Event
	stopped []string
	// listHook, when set, runs in List after the dynos are read (a slow List).
	listHook func()
}

var _ drivers.Driver = (*fakeDriver)(nil)

func newFakeDriver() *fakeDriver {
	return &fakeDriver{dynos: map[string]*drivers.Dyno{}, events: make(chan drivers.Event, 1024)}
}

func (f *fakeDriver) Start(_ context.Context, spec drivers.DynoSpec) (drivers.Dyno, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	state := drivers.StateUp
	if strings.Contains(spec.Command, "never-binds") {
		state = drivers.StateStarting
	}
	d := &drivers.Dyno{ID: fmt.Sprintf("fake-%d", f.next), Spec: spec, Name: spec.Name(), State: state,
		StartedAt: time.Now(), StateChangedAt: time.Now()}
	if spec.Type == "web" {
		d.Addr = fmt.Sprintf("127.0.0.1:%d", 20000+f.next)
	}
	f.dynos[d.ID] = d
	return *d, nil
}

func (f *fakeDriver) Stop(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.dynos[id]; !ok {
		return fmt.Errorf("no dyno %s", id)
	}
	delete(f.dynos, id)
	f.stopped = append(f.stopped, id)
	return nil
}

func (f *fakeDriver) List(ctx context.Context) ([]drivers.Dyno, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]drivers.Dyno, 0, len(f.dynos))
	for _, d := range f.dynos {
		out = append(out, *d)
	}
	hook := f.listHook
	f.mu.Unlock()
	if hook != nil {
		hook()
	}
	f.mu.Lock() // for the deferred Unlock
	if err := ctx.Err(); err != nil {
		return nil, err // as the process driver's List
	}
	return out, nil
}

func (f *fakeDriver) Run(ctx context.Context, oneOff drivers.OneOff) (int, error) {
	f.mu.Lock()
	f.runs = append(f.runs, oneOff.DynoSpec)
	f.mu.Unlock()
	if oneOff.Stdout != nil {
		fmt.Fprintf(oneOff.Stdout, "running %s\n", oneOff.Command)
	}
	if strings.Contains(oneOff.Command, "hang") {
		<-ctx.Done() // killed, as a driver kills a one-off whose ctx ends
		return -1, nil
	}
	var code int
	if _, after, ok := strings.Cut(oneOff.Command, "exit "); ok {
		fmt.Sscanf(after, "%d", &code)
	}
	return code, nil
}

func (f *fakeDriver) Events() <-chan drivers.Event { return f.events }
func (f *fakeDriver) Close() error                 { return nil }

// crash marks a dyno crashed, as a driver does when its process exits.
func (f *fakeDriver) crash(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.dynos {
		if d.Name == name {
			d.State = drivers.StateCrashed
		}
	}
}

// summary is "web.1@v1 web.2@v1 worker.1@v1" for the app's running dynos, sorted.
func (f *fakeDriver) summary(app, env string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for _, d := range f.dynos {
		if d.Spec.App == app && d.Spec.Env == env {
			parts = append(parts, fmt.Sprintf("%s@v%d", d.Name, d.Spec.Release))
		}
	}
	sortStrings(parts)
	return strings.Join(parts, " ")
}

func (f *fakeDriver) runCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.runs)
}

// runsSince returns the one-offs run after the first n.
func (f *fakeDriver) runsSince(n int) []drivers.DynoSpec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]drivers.DynoSpec(nil), f.runs[n:]...)
}
