package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	dockerswarm "github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
	"github.com/manifold-paas/manifold/reconciler"
)

// The swarm app: a shell web process (busybox httpd serving "$GREETING from $DYNO")
// and a worker that logs, built by the procfile buildpack, so no build takes time.
const (
	swarmProcfile = "web: sh web.sh\nworker: sh worker.sh\n"
	swarmWeb      = `mkdir -p /tmp/www
echo "$GREETING from $DYNO" > /tmp/www/index.html
echo "web $DYNO serving $GREETING"
exec httpd -f -p "$PORT" -h /tmp/www
`
	swarmWorker = `trap 'echo "worker $DYNO stopping"; exit 0' TERM
echo "worker $DYNO started"
n=0
while true; do n=$((n + 1)); echo "worker $DYNO tick $n"; sleep 2 & wait $!; done
`
	swarmApp = `app "hello" {
  source { path = "../src/hello" }
  config = { GREETING = "%GREETING%" }
  process "web" {
    count = %WEB%
    size  = "basic"
  }
  process "worker" {
    count = 1
    size  = "basic"
  }
}
`
)

// swarmHost is the hello app's host at the router.
const swarmHost = "hello.default.localhost"

// needSwarm fails under CI=true, and skips elsewhere, when extra daemons cannot run.
func needSwarm(t *testing.T) {
	t.Helper()
	if problem := swarmtest.Available(); problem != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("swarm tests: CI=true and %s", problem)
		}
		t.Skip("swarm tests: " + problem)
	}
}

func writeSwarmApp(t *testing.T, repo, greeting string, web int) {
	t.Helper()
	spec := strings.NewReplacer("%GREETING%", greeting, "%WEB%", strconv.Itoa(web)).Replace(swarmApp)
	if err := os.WriteFile(filepath.Join(repo, "apps", "hello.hcl"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// swarmRepo is a git config repo with the hello app of swarmApp.
func swarmRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	src := filepath.Join(repo, "src", "hello")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{"Procfile": swarmProcfile, "web.sh": swarmWeb, "worker.sh": swarmWorker} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeSwarmApp(t, repo, "hi", 1)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "hello: web and worker")
	return repo
}

// TestUpSwarmDriver runs `manifold up --driver swarm` against a two-node swarm
// (extra daemons on a test bridge; the host engine joins nothing) and drives it
// through git commits, the CLI and the router: deploy, ps, a scale-up spread over the
// nodes, a config change under load with no failed request, a one-off's exit code,
// logs of tasks on both nodes, and a daemon restart that adopts every service and
// task as they are. An engine that is no manager is refused with what to do.
func TestUpSwarmDriver(t *testing.T) {
	needSwarm(t)
	needDocker(t) // the stack image, loaded into the nodes from the host's engine
	c := swarmtest.Start(t, 2, swarm.DefaultStack, swarm.NodeImageLabel)
	mgr, other := c.Manager(), c.Nodes[1]

	t.Run("refuses an engine that is no manager", func(t *testing.T) {
		standalone := c.AddStandalone(t)
		for _, tc := range []struct {
			name, host string
			want       []string
		}{
			{"not in a swarm", standalone.Host, []string{"is not a swarm manager", `swarm state "inactive"`, "run `docker swarm init` there"}},
			{"a worker", other.Host, []string{"is not a swarm manager but a worker", "point DOCKER_HOST at a manager", mgr.Addr + ":2377"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				state := t.TempDir()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				cmd := exec.CommandContext(ctx, os.Args[0], "up", "--driver", "swarm", "--repo", t.TempDir(), "--state", state, "--router", freeAddr(t))
				cmd.Env = append(os.Environ(), "MANIFOLD_TEST_EXEC=1", "DOCKER_HOST="+tc.host)
				out, err := cmd.CombinedOutput()
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("manifold up: %v, want exit 1; output:\n%s", err, out)
				}
				for _, want := range tc.want {
					if !strings.Contains(string(out), want) {
						t.Errorf("output does not say %q:\n%s", want, out)
					}
				}
			})
		}
	})

	repo := swarmRepo(t)
	state := t.TempDir()
	routerAddr, apiAddr := freeAddr(t), socketAPI(state)
	// The nodes fetch slugs from the test process on the bridge; a fixed port, so that
	// the restarted daemon serves them where the services say.
	slugAddr := net.JoinHostPort(c.HostAddr, freePortOn(t, c.HostAddr))
	t.Setenv("DOCKER_HOST", mgr.Host)
	t.Setenv("MANIFOLD_SWARM_SLUG_LISTEN", slugAddr)
	t.Setenv("MANIFOLD_SWARM_SLUG_URL", "http://"+slugAddr)
	args := []string{"up", "--driver", "swarm", "--repo", "file://" + repo, "--state", state,
		"--router", routerAddr, "--interval", "500ms", "--boot-timeout", "20s", "-v"}
	d := startDaemonArgs(t, state, routerAddr, args...)

	// ps first: polling the router meanwhile would fill the app's log (1500 lines,
	// checked below) with H14 lines.
	eventually(t, 2*time.Minute, "ps lists web.1 and worker.1 up", func() error {
		code, out, errOut := runCLI(t, "--api", apiAddr, "ps", "-a", "hello")
		if code != 0 || !strings.Contains(out, "\nweb.1: up ") || !strings.Contains(out, "\nworker.1: up ") {
			return fmt.Errorf("ps: exit %d\n%s%s", code, out, errOut)
		}
		return nil
	})
	eventually(t, 30*time.Second, "web answers through the router with its config", func() error {
		return answers(d, "hi from web.1")
	})

	t.Run("scale 1 -> 3 spreads over the nodes", func(t *testing.T) {
		writeSwarmApp(t, repo, "hi", 3)
		git(t, repo, "commit", "-q", "-am", "scale web to 3")
		waitWeb(t, d, 3, 1)
		nodes := map[string]bool{}
		for _, task := range runningTasks(t, mgr, "web") {
			nodes[task.NodeID] = true
		}
		if len(nodes) != 2 {
			t.Errorf("web tasks on %d nodes, want 2", len(nodes))
		}
		seen := answering(t, d, "hi", 3)
		if len(seen) != 3 {
			t.Errorf("answered through the router: %v, want web.1, web.2, web.3", seen)
		}
		code, out, errOut := runCLI(t, "--api", apiAddr, "ps", "-a", "hello")
		for _, want := range []string{"\nweb.1: up ", "\nweb.2: up ", "\nweb.3: up ", "\nworker.1: up ", "=== web (Basic): sh web.sh (3)"} {
			if code != 0 || !strings.Contains(out, want) {
				t.Errorf("ps does not list %q: exit %d\n%s%s", want, code, out, errOut)
			}
		}
	})

	// Before the load below: the app's log keeps its last 1500 lines, router lines too.
	t.Run("logs of web.N and worker.1, also from the other node", func(t *testing.T) {
		var onOther string
		for _, task := range runningTasks(t, mgr, "web") {
			if task.NodeID == other.ID {
				onOther = "web." + strconv.Itoa(task.Slot)
			}
		}
		if onOther == "" {
			t.Fatal("no web task on the non-manager node")
		}
		eventually(t, 30*time.Second, "logs of "+onOther+" and worker.1", func() error {
			for ps, want := range map[string]string{
				onOther:    "app[" + onOther + "]: web " + onOther + " serving hi",
				"worker.1": "app[worker.1]: worker worker.1 tick ",
			} {
				code, out, errOut := runCLI(t, "--api", apiAddr, "logs", "-a", "hello", "--ps", ps, "-n", "1500", "--source", "app")
				if code != 0 || !strings.Contains(out, want) {
					return fmt.Errorf("logs --ps %s (exit %d) do not show %q:\n%s%s", ps, code, want, tail(out, 30), errOut)
				}
			}
			return nil
		})
	})

	t.Run("a config change deploys with no failed request", func(t *testing.T) {
		var requests, failed atomic.Int64
		var mu sync.Mutex
		var failures []string
		ctx, stop := context.WithCancel(context.Background())
		var clients sync.WaitGroup
		for range 2 {
			clients.Add(1)
			go func() {
				defer clients.Done()
				for range 20000 { // bounded: the deploy takes seconds, not 20000 requests
					if ctx.Err() != nil {
						return
					}
					requests.Add(1)
					if _, err := d.get(swarmHost); err != nil {
						failed.Add(1)
						mu.Lock()
						failures = append(failures, err.Error())
						mu.Unlock()
					}
				}
			}()
		}
		writeSwarmApp(t, repo, "bye", 3)
		git(t, repo, "commit", "-q", "-am", "GREETING: bye")
		waitWeb(t, d, 3, 2)
		seen := answering(t, d, "bye", 3)
		eventually(t, time.Minute, "v2 deployed", func() error {
			s, err := d.appStatus("hello", "default")
			if err == nil && (s.Release != 2 || s.State != reconciler.StateReady) {
				err = fmt.Errorf("status %+v", s)
			}
			return err
		})
		stop()
		clients.Wait()
		if len(seen) != 3 {
			t.Errorf("answered with the new config: %v, want web.1, web.2, web.3", seen)
		}
		t.Logf("%d requests during the config change, %d failed", requests.Load(), failed.Load())
		if failed.Load() != 0 || requests.Load() == 0 {
			t.Errorf("%d of %d requests failed during the deploy: %v", failed.Load(), requests.Load(), failures[:min(len(failures), 5)])
		}
	})

	t.Run("run passes the exit code through", func(t *testing.T) {
		code, out, errOut := runCLI(t, "--api", apiAddr, "run", "-a", "hello", "--", "sh", "-c", "echo one-off $DYNO says $GREETING; exit 3")
		if code != 3 || !strings.Contains(out, "one-off run.") || !strings.Contains(out, "says bye") {
			t.Errorf("run: exit %d, stdout %q, stderr %q; want 3 and the one-off's output", code, out, errOut)
		}
		// The one-off connects out to the daemon's rendezvous endpoint: stdin
		// reaches the command and its output comes back.
		code, out, errOut = runCLIWithStdin(t, strings.NewReader("data\nmore data\n"), "--api", apiAddr, "run", "-a", "hello", "--", "sh", "-c", "cat; wc -l </dev/null; exit 4")
		if code != 4 || out != "data\nmore data\n0\n" {
			t.Errorf("run with data on stdin: exit %d, stdout %q, stderr %q; want 4 and the data back", code, out, errOut)
		}
		// From a terminal: a pty of its size and TERM, a typed line, the exit code.
		runOnATerminal(t, apiAddr)
	})

	t.Run("a restarted daemon adopts every service and task", func(t *testing.T) {
		// Swarm writes a service once more when its rolling update completes (the
		// monitor period after the last task): compare from then on.
		eventually(t, time.Minute, "the services' updates completed", func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			list, err := mgr.Client.ServiceList(ctx, dockerswarm.ServiceListOptions{})
			if err != nil {
				return err
			}
			for _, s := range list {
				if u := s.UpdateStatus; u != nil && u.State != dockerswarm.UpdateStateCompleted {
					return fmt.Errorf("%s: update %s", s.Spec.Name, u.State)
				}
			}
			return nil
		})
		services, tasks := swarmState(t, mgr)
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Wait(); err != nil {
			t.Fatalf("manifold up after SIGTERM: %v", err)
		}
		restarted := time.Now()
		// This time by flag, and the URL derived from the address: the same as before.
		t.Setenv("MANIFOLD_SWARM_SLUG_LISTEN", "")
		t.Setenv("MANIFOLD_SWARM_SLUG_URL", "")
		d2 := startDaemonArgs(t, state, routerAddr, append(args, "--swarm-slug-listen", slugAddr)...)
		eventually(t, time.Minute, "the restarted daemon has made a pass and answers", func() error {
			status, err := d2.api.Status(context.Background())
			if err != nil {
				return err
			}
			if !status.LastPass.After(restarted) {
				return errors.New("no pass yet")
			}
			s, err := d2.appStatus("hello", "default")
			if err != nil {
				return err
			}
			if s.State != reconciler.StateReady {
				return fmt.Errorf("hello is %s: %s", s.State, s.Reason)
			}
			return answers(d2, "bye from web.")
		})
		waitWeb(t, d2, 3, 2)
		servicesAfter, tasksAfter := swarmState(t, mgr)
		if fmt.Sprint(servicesAfter) != fmt.Sprint(services) {
			t.Errorf("services after the restart:\n%v\nwant as before:\n%v", servicesAfter, services)
		}
		if fmt.Sprint(tasksAfter) != fmt.Sprint(tasks) {
			t.Errorf("running tasks after the restart:\n%v\nwant as before:\n%v", tasksAfter, tasks)
		}
	})
}

// answers checks that the hello app answers through the router with a body holding want.
func answers(d *daemon, want string) error {
	body, err := d.get(swarmHost)
	if err == nil && !strings.Contains(body, want) {
		err = fmt.Errorf("body %q, want %q", body, want)
	}
	return err
}

// waitWeb waits until ps lists exactly n web dynos, all up, of release v, and
// worker.1 up.
func waitWeb(t *testing.T, d *daemon, n, release int) {
	t.Helper()
	eventually(t, 2*time.Minute, fmt.Sprintf("%d web dynos of v%d up", n, release), func() error {
		ps, err := d.dynos("hello", "default")
		if err != nil {
			return err
		}
		var web, worker []string
		for _, dyno := range ps.Dynos {
			line := dyno.Name + " " + string(dyno.State) + " v" + strconv.Itoa(dyno.Spec.Release)
			switch {
			case dyno.Spec.Type == "web" && dyno.State == drivers.StateUp && dyno.Spec.Release == release:
				web = append(web, line)
			case dyno.Spec.Type == "worker" && dyno.State == drivers.StateUp && dyno.Name == "worker.1":
				worker = append(worker, line)
			}
		}
		if len(web) != n || len(worker) != 1 || len(ps.Dynos) != n+1 {
			return fmt.Errorf("dynos %v", dynoIDs(ps))
		}
		return nil
	})
}

// answering asks the router until each of n web dynos has answered with greeting
// (bounded), and returns the dynos that did.
func answering(t *testing.T, d *daemon, greeting string, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	for range 300 {
		body, err := d.get(swarmHost)
		if err != nil {
			t.Errorf("router: %v", err)
			continue
		}
		if dyno, ok := strings.CutPrefix(strings.TrimSpace(body), greeting+" from "); ok {
			seen[dyno] = true
		}
		if len(seen) == n {
			break
		}
	}
	var dynos []string
	for dyno := range seen {
		dynos = append(dynos, dyno)
	}
	slices.Sort(dynos)
	return dynos
}

// runningTasks are the tasks of the hello app's process type that Swarm wants running.
func runningTasks(t *testing.T, mgr *swarmtest.Node, process string) []dockerswarm.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	service := "mf-" + swarm.DefaultInstance + "-hello-default-" + process
	tasks, err := mgr.Client.TaskList(ctx, dockerswarm.TaskListOptions{})
	if err != nil {
		t.Fatalf("task list: %v", err)
	}
	svc, _, err := mgr.Client.ServiceInspectWithRaw(ctx, service, dockerswarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("service %s: %v", service, err)
	}
	var running []dockerswarm.Task
	for _, task := range tasks {
		if task.ServiceID == svc.ID && task.DesiredState == dockerswarm.TaskStateRunning {
			running = append(running, task)
		}
	}
	return running
}

// swarmState is every service (name, id, version) and every task Swarm wants running
// (id, slot, node, state) on the manager, sorted.
func swarmState(t *testing.T, mgr *swarmtest.Node) (services, tasks []string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := mgr.Client.ServiceList(ctx, dockerswarm.ServiceListOptions{})
	if err != nil {
		t.Fatalf("service list: %v", err)
	}
	for _, s := range list {
		services = append(services, fmt.Sprintf("%s id=%s version=%d", s.Spec.Name, s.ID, s.Version.Index))
	}
	all, err := mgr.Client.TaskList(ctx, dockerswarm.TaskListOptions{})
	if err != nil {
		t.Fatalf("task list: %v", err)
	}
	for _, task := range all {
		if task.DesiredState == dockerswarm.TaskStateRunning {
			tasks = append(tasks, fmt.Sprintf("%s slot=%d node=%s %s", task.ID, task.Slot, task.NodeID, task.Status.State))
		}
	}
	slices.Sort(services)
	slices.Sort(tasks)
	return services, tasks
}

// freePortOn is a port free on host's address.
func freePortOn(t *testing.T, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}
