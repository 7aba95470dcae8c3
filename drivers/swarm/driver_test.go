package swarm_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dockerswarm "github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
	"github.com/manifold-paas/manifold/logs"
)

// TestSwarmDriver runs one app on a three-node swarm: its replicas spread over the
// nodes and the router answers from each; logs of tasks on other nodes arrive named
// web.N; one-offs pass their exit codes through; a scale-down stops one task; a new
// driver adopts everything (the guard too) without restarting a task; the guard
// keeps an outside host from the dynos' ports until a driver with NoGuard removes it.
func TestSwarmDriver(t *testing.T) {
	c := newCluster(t, 3)
	out := &sink{}
	// A fixed port: the adopting driver must serve slugs at the URL in the service.
	port := freePort(t, c.HostAddr)
	listen := net.JoinHostPort(c.HostAddr, port)
	instance := randomName()
	began := time.Now()
	d := newDriver(t, c, instance, listen, out)
	outsider := c.AddOutsider(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	slug := makeSlug(t)
	app := "hello"

	// The first web start waits for the fresh guard: once it returns, every node
	// filters the port its task will publish (looked at once, not polled).
	if _, err := d.Start(ctx, webSpec(app, 1, 1, slug)); err != nil {
		t.Fatalf("start web.1: %v", err)
	}
	if ok, last := guardOnEveryNode(c, instance, true); !ok {
		t.Fatalf("the first web dyno started before the guard ran on every node; rules seen: %s", last)
	}
	t.Logf("guard in place on %d nodes %s after swarm.New began", len(c.Nodes), time.Since(began).Round(10*time.Millisecond))

	for i := 2; i <= 3; i++ {
		if _, err := d.Start(ctx, webSpec(app, i, 1, slug)); err != nil {
			t.Fatalf("start web.%d: %v", i, err)
		}
	}
	dynos := waitDynos(t, d, app, 2*time.Minute, allUp(3))

	t.Run("spread over three nodes, router answers from each", func(t *testing.T) {
		hosts := map[string]bool{}
		for _, dy := range dynos {
			hosts[hostOf(dy.Addr)] = true
		}
		if len(hosts) != 3 {
			t.Fatalf("web dynos on %d nodes, want 3: %v", len(hosts), summary(dynos))
		}
		r, srv := newRouter(t)
		routeTo(r, app, dynos)
		nodes := map[string]bool{}
		for range 30 {
			body := get(t, srv.URL, app+".test")
			fields := strings.Fields(body)
			if len(fields) != 2 || !strings.HasPrefix(fields[0], "web.") {
				t.Fatalf("answer %q: want DYNO NODE", body)
			}
			nodes[fields[1]] = true
		}
		if len(nodes) != 3 {
			t.Fatalf("router answered from %d nodes, want 3: %v", len(nodes), nodes)
		}
	})

	t.Run("an outside host cannot reach a dyno's port; the router's address can", func(t *testing.T) {
		for _, dy := range dynos {
			if err := outsider.Dial(dy.Addr, 2*time.Second); err == nil {
				t.Fatalf("outside host %s connected to %s's port %s", outsider.Addr, dy.Name, dy.Addr)
			}
			// docker-proxy serves the port on the node's IPv6 addresses too.
			addr6 := linkLocalAddr(t, c, outsider, dy.Addr)
			if err := outsider.Dial(addr6, 2*time.Second); err == nil {
				t.Fatalf("outside host connected to %s's port over IPv6 at %s", dy.Name, addr6)
			}
			// The test process is where the router is, at the slug URL's host.
			conn, err := net.DialTimeout("tcp", dy.Addr, 5*time.Second)
			if err != nil {
				t.Fatalf("the router's address cannot connect to %s at %s: %v", dy.Name, dy.Addr, err)
			}
			conn.Close()
		}
		all, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dy := range all {
			if dy.Spec.App != app {
				t.Fatalf("List reports %s, which is no dyno of %s (the guard is not a dyno)", dy.ID, app)
			}
		}
	})

	t.Run("logs of tasks on every node reach logplex as web.N", func(t *testing.T) {
		workers := map[string]bool{}
		for _, n := range c.Nodes[1:] {
			workers[n.ID] = true
		}
		err := poll(t, 30*time.Second, func() bool {
			_, ok := out.find(func(l logs.Line) bool {
				fields := strings.Fields(l.Text)
				return l.Source == logs.SourceApp && l.App == app && len(fields) == 4 && fields[0] == "booted" &&
					fields[1] == l.Dyno && workers[fields[3]]
			})
			return ok
		})
		if err != nil {
			t.Fatalf("no boot line of a task on a worker node named as its dyno: %v; lines: %v", err, out.texts())
		}
	})

	t.Run("run passes exit codes through", func(t *testing.T) {
		for _, want := range []int{0, 3} {
			spec := webSpec(app, 1, 1, slug)
			spec.Type = "run"
			spec.Command = "echo out-$DYNO; echo err >&2; exit " + string(rune('0'+want))
			var stdout, stderr strings.Builder
			code, err := d.Run(ctx, drivers.OneOff{DynoSpec: spec, Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatalf("run: %v", err)
			}
			// The rendezvous is one stream: stderr comes merged into stdout.
			if code != want || stdout.String() != "out-run.1\nerr\n" || stderr.String() != "" {
				t.Fatalf("run: code %d stdout %q stderr %q, want %d, out-run.1 then err on stdout", code, stdout.String(), stderr.String(), want)
			}
		}
	})

	t.Run("a scale-down stops one task", func(t *testing.T) {
		if err := d.Stop(ctx, dynos[2].ID); err != nil {
			t.Fatalf("stop %s: %v", dynos[2].ID, err)
		}
		dynos = waitDynos(t, d, app, time.Minute, allUp(2))
	})

	var d2 *swarm.Driver
	t.Run("a new driver adopts every service and the guard; no task restarts", func(t *testing.T) {
		mgr := c.Manager().Client
		before := runningTaskIDs(t, mgr, instance)
		svcBefore := serviceVersions(t, mgr, instance)
		if err := d.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		d2 = newDriver(t, c, instance, listen, out)
		after := waitDynos(t, d2, app, 30*time.Second, allUp(2))
		if strings.Join(summary(after), ",") != strings.Join(summary(dynos), ",") {
			t.Fatalf("adopted dynos %v, want %v", summary(after), summary(dynos))
		}
		if now := runningTaskIDs(t, mgr, instance); strings.Join(now, ",") != strings.Join(before, ",") {
			t.Fatalf("tasks after adoption %v, want the same %v", now, before)
		}
		if now := serviceVersions(t, mgr, instance); now != svcBefore {
			t.Fatalf("services after adoption %s, want the same ids and versions %s", now, svcBefore)
		}
	})
	t.Run("a driver with NoGuard removes the guard: no chain on any node, ports open", func(t *testing.T) {
		if d2 == nil {
			t.Fatal("no adopting driver: the adoption subtest failed")
		}
		if err := d2.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		d3, err := swarm.New(ctx, swarm.Options{
			Logs: out, Logger: slog.New(slog.DiscardHandler), Host: c.Manager().Host, Instance: instance,
			SlugListen: listen, NoGuard: true,
		})
		if err != nil {
			t.Fatalf("swarm.New with NoGuard: %v", err)
		}
		t.Cleanup(func() { _ = d3.Close() })
		waitGuard(t, c, instance, false)
		// The guard was what kept the outside host out, over IPv4 and IPv6.
		for _, addr := range []string{dynos[0].Addr, linkLocalAddr(t, c, outsider, dynos[0].Addr)} {
			if err := outsider.Dial(addr, 5*time.Second); err != nil {
				t.Fatalf("without the guard the outside host cannot connect to %s: %v", addr, err)
			}
		}
		waitDynos(t, d3, app, 30*time.Second, allUp(2))
	})
}

// waitGuard waits until the instance's guard chains, and the jumps to them (IPv4:
// from DOCKER-USER; IPv6: from INPUT), are on every node (present) or on none.
func waitGuard(t testing.TB, c *swarmtest.Cluster, instance string, present bool) {
	t.Helper()
	var last string
	err := poll(t, time.Minute, func() bool {
		var ok bool
		ok, last = guardOnEveryNode(c, instance, present)
		return ok
	})
	if err != nil {
		t.Fatalf("guard chain %s present=%v on every node: %v; last rules seen: %s", swarm.GuardChain(instance), present, err, last)
	}
}

// guardOnEveryNode tells whether the guard's chains and jumps are on every node
// (present) or on none, and the last node's rules it read.
func guardOnEveryNode(c *swarmtest.Cluster, instance string, present bool) (bool, string) {
	chain := swarm.GuardChain(instance)
	last := ""
	for _, n := range c.Nodes {
		rules, err := n.Rules(context.Background())
		if err != nil {
			return false, err.Error()
		}
		last = n.Name + ":\n" + rules
		v4, v6, _ := strings.Cut(rules, "# ip6tables\n")
		has := func(rules, from string) bool {
			return strings.Contains(rules, "-N "+chain+"\n") && strings.Contains(rules, "-A "+chain+" -j DROP\n") &&
				strings.Contains(rules, "-A "+from+" ") && strings.Contains(rules, "-j "+chain+"\n")
		}
		if present && (!has(v4, "DOCKER-USER") || !has(v6, "INPUT")) || !present && strings.Contains(rules, chain) {
			return false, last
		}
	}
	return true, last
}

// linkLocalAddr is [fe80::…%iface]:port of the node and port of addr (node:port),
// as the outsider reaches it.
func linkLocalAddr(t testing.TB, c *swarmtest.Cluster, o *swarmtest.Outsider, addr string) string {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	for _, n := range c.Nodes {
		if n.Addr == host {
			ll, err := o.LinkLocal(context.Background(), n)
			if err != nil {
				t.Fatal(err)
			}
			return net.JoinHostPort(ll, port)
		}
	}
	t.Fatalf("no node at %s", host)
	return ""
}

func TestNotAManager(t *testing.T) {
	needSwarm(t)
	// The host's own engine is never a swarm member in these tests.
	_, err := swarm.New(context.Background(), swarm.Options{Logs: &sink{}})
	if !errors.Is(err, swarm.ErrNotManager) || !strings.Contains(err.Error(), "docker swarm init") {
		t.Fatalf("New on a plain engine: %v, want ErrNotManager naming docker swarm init", err)
	}
}

func runningTaskIDs(t testing.TB, cli interface {
	TaskList(context.Context, dockerswarm.TaskListOptions) ([]dockerswarm.Task, error)
}, instance string) []string {
	t.Helper()
	tasks, err := cli.TaskList(context.Background(), dockerswarm.TaskListOptions{})
	if err != nil {
		t.Fatalf("task list: %v", err)
	}
	var ids []string
	for _, task := range tasks {
		if task.Status.State == dockerswarm.TaskStateRunning && task.Spec.ContainerSpec.Labels[swarm.LabelInstance] == instance {
			ids = append(ids, task.ID)
		}
	}
	if len(ids) == 0 {
		t.Fatal("no running task")
	}
	return ids
}

// serviceVersions is "id@version ..." of the instance's services.
func serviceVersions(t testing.TB, cli interface {
	ServiceList(context.Context, dockerswarm.ServiceListOptions) ([]dockerswarm.Service, error)
}, instance string) string {
	t.Helper()
	services, err := cli.ServiceList(context.Background(), dockerswarm.ServiceListOptions{})
	if err != nil {
		t.Fatalf("service list: %v", err)
	}
	var out []string
	for _, s := range services {
		if s.Spec.Labels[swarm.LabelInstance] == instance {
			out = append(out, s.ID+"@"+strconv.FormatUint(s.Version.Index, 10))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func get(t testing.TB, url, host string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/", nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", host, resp.Status, body)
	}
	return strings.TrimSpace(string(body))
}

func freePort(t testing.TB, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
