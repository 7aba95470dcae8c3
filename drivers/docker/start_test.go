package docker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/docker"
	"github.com/manifold-paas/manifold/logs"
)

func httpGet(t testing.TB, url string) string {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(body)
}

func TestStartWebDynoAnswersFromTheHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("web")
	ctx := context.Background()

	started, err := d.Start(ctx, webSpec(app, 1, webSlug(t)))
	if err != nil {
		t.Fatal(err)
	}
	// Start returns at once; the dyno manager may have seen it up already.
	if (started.State != drivers.StateStarting && started.State != drivers.StateUp) || started.ID == "" {
		t.Fatalf("Start returned %+v, want a starting (or up) dyno with an id", started)
	}
	up := nextEvent(t, d, "web.1 up", func(ev drivers.Event) bool {
		return ev.Dyno.ID == started.ID && ev.To == drivers.StateUp
	})
	if up.From != drivers.StateStarting || up.Dyno.Addr == "" {
		t.Fatalf("up event %+v: want from starting, with an address", up)
	}
	if got := httpGet(t, "http://"+up.Dyno.Addr+"/"); got != "hello from a slug\n" {
		t.Errorf("GET / = %q", got)
	}
	if got := httpGet(t, "http://"+up.Dyno.Addr+"/env.txt"); got != "web.1 web.1 /app 5000 hi\n" {
		t.Errorf("DYNO PS HOME PORT GREETING = %q", got)
	}

	info, err := e.raw.ContainerInspect(ctx, started.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + app + ".production.web.1"; info.Name != want {
		t.Errorf("container name %q, want %q", info.Name, want)
	}
	wantLabels := map[string]string{
		docker.LabelApp: app, docker.LabelEnv: "production", docker.LabelRelease: "3",
		docker.LabelProcess: "web", docker.LabelDyno: "web.1", docker.LabelSlug: "sha256-test",
		docker.LabelInstance: e.instance,
	}
	for k, v := range wantLabels {
		if info.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, info.Config.Labels[k], v)
		}
	}
	if len(info.HostConfig.PortBindings) != 0 {
		t.Errorf("host ports published: %v", info.HostConfig.PortBindings)
	}
	if _, ok := info.NetworkSettings.Networks["manifold."+app+".production"]; !ok {
		t.Errorf("not on the app network: %v", info.NetworkSettings.Networks)
	}
	for _, text := range []string{"Starting process with command `" + webCommand + "`", "State changed from starting to up"} {
		if e.logs.count("web.1", logs.SourceHeroku, text) != 1 {
			t.Errorf("want one platform line %q; got:\n%s", text, e.logs.dump())
		}
	}

	if err := d.Stop(ctx, started.ID); err != nil {
		t.Fatal(err)
	}
	// tini forwards SIGTERM: the process dies of it (143), not of the SIGKILL (137).
	for _, text := range []string{"Stopping all processes with SIGTERM", "Process exited with status 143", "State changed from up to down"} {
		if e.logs.count("web.1", logs.SourceHeroku, text) != 1 {
			t.Errorf("want one platform line %q; got:\n%s", text, e.logs.dump())
		}
	}
	if n := len(e.networks()); n != 0 {
		t.Errorf("%d networks left after the last dyno stopped", n)
	}
}

func TestScaleAndResize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("scale")
	ctx := context.Background()
	slugPath := webSlug(t)

	const dynos = 3
	for i := 1; i <= dynos; i++ {
		spec := webSpec(app, i, slugPath)
		spec.Size, spec.MemoryBytes, spec.CPUShares = "standard-1x", 64<<20, 512
		if _, err := d.Start(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= dynos; i++ {
		name := drivers.DynoName("web", i)
		dy := waitDyno(t, d, app, name, isUp)
		if got := httpGet(t, "http://"+dy.Addr+"/env.txt"); !strings.HasPrefix(got, name+" ") {
			t.Errorf("%s answers as %q", name, got)
		}
		info, err := e.raw.ContainerInspect(ctx, dy.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r := info.HostConfig.Resources; r.Memory != 64<<20 || r.MemorySwap != 64<<20 || r.CPUShares != 512 {
			t.Errorf("%s: memory %d swap %d shares %d, want 64 MiB, 64 MiB, 512", name, r.Memory, r.MemorySwap, r.CPUShares)
		}
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != dynos {
		t.Fatalf("List: %d dynos, want %d", len(list), dynos)
	}
	// Scale down to one, then stop the app.
	for _, dy := range list[1:] {
		if err := d.Stop(ctx, dy.ID); err != nil {
			t.Fatal(err)
		}
	}
	if list, err = d.List(ctx); err != nil || len(list) != 1 || list[0].Name != "web.1" {
		t.Fatalf("after scaling to 1: %+v (%v)", list, err)
	}
	if len(e.networks()) != 1 {
		t.Errorf("app network gone while web.1 runs")
	}
	stopAll(t, d)
	if len(e.containers()) != 0 || len(e.networks()) != 0 || len(e.volumes()) != 0 {
		t.Errorf("containers, network or slug volume left after the last stop")
	}
}

// A rolling deploy starts the new release's web.1 beside the old one.
func TestRollingDeployNamesBesideOldRelease(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("roll")
	ctx := context.Background()
	slugPath := webSlug(t)
	old := webSpec(app, 1, slugPath)
	next := old
	next.Release = 4
	oldDyno, err := d.Start(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	newDyno, err := d.Start(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.raw.ContainerInspect(ctx, newDyno.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := "/" + app + ".production.web.1.v4"; info.Name != want {
		t.Errorf("new release's container is %q, want %q", info.Name, want)
	}
	waitDyno(t, d, app, "web.1", func(dy drivers.Dyno) bool { return dy.ID == newDyno.ID && isUp(dy) })
	if err := d.Stop(ctx, oldDyno.ID); err != nil {
		t.Fatal(err)
	}
	list, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Spec.Release != 4 {
		t.Fatalf("after the roll: %+v", list)
	}
	stopAll(t, d)
}

func TestStartFailuresLeaveNothingBehind(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	ctx := context.Background()
	good := webSlug(t)
	truncated := t.TempDir() + "/truncated.tgz"
	raw := mustRead(t, good)
	mustWrite(t, truncated, raw[:len(raw)/2])
	// A slug whose only entry is a file named app unpacks to / and would replace the
	// /app directory with a file: the engine refuses the copy itself.
	fileOverDir := slug(t, map[string]string{"app": "not a directory"})

	tests := []struct {
		name   string
		mutate func(*drivers.DynoSpec)
		want   []string
		is     error
	}{
		{"missing image", func(s *drivers.DynoSpec) { s.Stack = "manifold/no-such-stack:0" }, []string{"make stack-image", "no-such-stack"}, docker.ErrImageMissing},
		{"slug missing", func(s *drivers.DynoSpec) { s.SlugPath = t.TempDir() + "/nope.tgz" }, []string{"nope.tgz"}, nil},
		{"slug truncated", func(s *drivers.DynoSpec) { s.SlugPath = truncated }, []string{"truncated.tgz"}, nil},
		{"copy refused by the engine", func(s *drivers.DynoSpec) { s.SlugPath = fileOverDir }, []string{"copy slug"}, nil},
		{"bad app name", func(s *drivers.DynoSpec) { s.App = "a/b" }, []string{`app "a/b"`}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			app := randomName("fail")
			spec := webSpec(app, 2, good)
			tc.mutate(&spec)
			_, err := d.Start(ctx, spec)
			if err == nil {
				t.Fatal("Start succeeded")
			}
			for _, want := range append(tc.want, "web.2", "(v3)") {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("error %v is not %v", err, tc.is)
			}
			if n, m, v := len(e.containers()), len(e.networks()), len(e.volumes()); n != 0 || m != 0 || v != 0 {
				t.Errorf("left %d containers, %d networks and %d volumes", n, m, v)
			}
		})
	}
}

func TestEngineUnreachable(t *testing.T) {
	t.Parallel()
	sock := "unix://" + t.TempDir() + "/no-engine.sock"
	_, err := docker.New(context.Background(), docker.Options{Logs: &sink{}, Host: sock})
	if !errors.Is(err, docker.ErrEngineUnreachable) {
		t.Fatalf("New: %v, want ErrEngineUnreachable", err)
	}
	if want := "Docker Engine not reachable at " + sock; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not say %q", err, want)
	}
}

// The slug reaches /app either as a read-only volume per slug (default; /app/tmp is a
// writable tmpfs) or as a copy into each container (CopySlug: all of /app writable).
func TestSlugModes(t *testing.T) {
	t.Parallel()
	const probe = `cat /app/public/index.html; (echo x > /app/new && echo app-rw) 2>/dev/null || echo app-ro; echo y > /app/tmp/new && echo tmp-rw`
	tests := []struct {
		name     string
		copySlug bool
		want     string
	}{
		{"volume", false, "hello from a slug\napp-ro\ntmp-rw\n"},
		{"copy", true, "hello from a slug\napp-rw\ntmp-rw\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			opts := e.options()
			opts.CopySlug = tc.copySlug
			d := e.driver(opts)
			var stdout bytes.Buffer
			o := drivers.OneOff{DynoSpec: drivers.DynoSpec{App: randomName("mode"), Env: "staging", Release: 1, SlugKey: "k", SlugPath: slug(t, map[string]string{"public/index.html": "hello from a slug\n", "tmp/.keep": ""}), Command: probe}}
			o.Stdout = &stdout
			code, err := d.Run(context.Background(), o)
			if err != nil || code != 0 {
				t.Fatalf("Run: %d, %v", code, err)
			}
			if stdout.String() != tc.want {
				t.Errorf("got %q, want %q", stdout.String(), tc.want)
			}
		})
	}
}

// A process that ignores SIGTERM is killed once its grace is over.
func TestStopEscalatesToSIGKILLAfterTheGrace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("grace")
	spec := drivers.DynoSpec{App: app, Env: "staging", Type: "worker", Index: 1, Release: 1, SlugKey: "k",
		SlugPath: webSlug(t), Command: "trap '' TERM; echo trapped; sleep 600", StopTimeout: time.Second}
	dy, err := d.Start(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	waitDyno(t, d, app, "worker.1", isUp)
	// A worker is up once it runs, maybe before its shell ignores SIGTERM.
	waitFor(t, "the dyno to ignore SIGTERM", func() bool { return e.logs.count("worker.1", logs.SourceApp, "trapped") == 1 })
	if err := d.Stop(context.Background(), dy.ID); err != nil {
		t.Fatal(err)
	}
	if e.logs.count("worker.1", logs.SourceHeroku, "Process exited with status 137") != 1 {
		t.Errorf("not killed after the grace:\n%s", e.logs.dump())
	}
}
