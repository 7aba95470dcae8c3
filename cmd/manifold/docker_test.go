package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/api"
)

// needDocker makes sure the engine answers and the stack image exists. Without an
// engine it skips on a laptop and fails under CI=true.
func needDocker(t *testing.T) {
	t.Helper()
	if out, err := exec.Command("docker", "info", "--format", "{{.ServerVersion}}").CombinedOutput(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the Docker Engine is not reachable: %v\n%s", err, out)
		}
		t.Skipf("skipping: needs the Docker Engine (docker info: %v)", err)
	}
	build := exec.Command("../../drivers/docker/stack/build.sh")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("stack image: %v\n%s", err, out)
	}
}

// TestUpDockerDriver deploys a Go web app and a static site as containers through
// `manifold up --driver docker`, scales one, and checks what the engine reports.
func TestUpDockerDriver(t *testing.T) {
	needDocker(t)
	instance := fmt.Sprintf("e2e%d", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { removeInstance(t, instance) })

	repo := t.TempDir()
	for _, app := range []string{"hello", "site"} {
		if err := os.CopyFS(filepath.Join(repo, "src", app), os.DirFS("../../examples/src/"+app)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeE2EApp(t, repo, "hi", 1)
	site := "app \"site\" {\n  source { path = \"../src/site\" }\n  process \"web\" { size = \"basic\" }\n}\n"
	if err := os.WriteFile(filepath.Join(repo, "apps", "site.hcl"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "hello and site")

	state := t.TempDir()
	routerAddr, apiAddr, tcpAPI := freeAddr(t), socketAPI(state), freeAddr(t)
	d := startDaemonArgs(t, state, routerAddr, "up", "--repo", "file://"+repo, "--state", state,
		"--router", routerAddr, "--api", tcpAPI, "--interval", "500ms", "--boot-timeout", "30s",
		"--driver", "docker", "--docker-instance", instance, "-v")

	for host, want := range map[string]string{"hello.default.localhost": "hi from web.1", "site.default.localhost": "static site"} {
		eventually(t, 3*time.Minute, host+" answers from a container", func() error {
			body, err := d.get(host)
			if err == nil && !strings.Contains(body, want) {
				err = fmt.Errorf("body %q", body)
			}
			return err
		})
	}

	writeE2EApp(t, repo, "hi", 2)
	git(t, repo, "commit", "-q", "-am", "scale hello web to 2")
	eventually(t, time.Minute, "two hello web containers", func() error {
		names := dockerNames(t, "label=manifold.instance="+instance, "label=manifold.app=hello", "label=manifold.process=web")
		if len(names) != 2 {
			return fmt.Errorf("containers %v", names)
		}
		return nil
	})
	// The size is the container's memory limit: standard-1x is 512 MB, basic too.
	for _, name := range dockerNames(t, "label=manifold.instance="+instance, "label=manifold.app=hello") {
		out, err := exec.Command("docker", "inspect", "--format", "{{.HostConfig.Memory}}", name).Output()
		if err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(512<<20) {
			t.Errorf("%s memory limit = %q, %v; want %d", name, out, err, 512<<20)
		}
	}
	code, out, errOut := runCLI(t, "--api", apiAddr, "run", "-a", "hello", "--", "echo $DYNO in $HOME; exit 4")
	if code != 4 || !strings.Contains(out, "run.1 in /app") {
		t.Errorf("run in a container: exit %d, %q %q", code, out, errOut)
	}
	checkRunArguments(t, apiAddr)

	// A container sees neither the socket nor the TCP API (its 127.0.0.1 is its own),
	// and its environment holds nothing of the daemon's.
	_, port, err := net.SplitHostPort(tcpAPI)
	if err != nil {
		t.Fatal(err)
	}
	probe := fmt.Sprintf("env; echo ---; test -e %[1]s && echo SOCKET-VISIBLE; nc -w 2 127.0.0.1 %[2]s </dev/null && echo TCP-REACHED; "+
		"wget -q -T 2 -O- http://127.0.0.1:%[2]s/v1/status && echo TCP-REACHED; exit 0", filepath.Join(state, "manifold.sock"), port)
	code, out, errOut = runCLI(t, "--api", apiAddr, "run", "-a", "hello", "--", probe)
	env, probes, found := strings.Cut(out, "---")
	if code != 0 || !found || strings.Contains(probes, "VISIBLE") || strings.Contains(probes, "REACHED") {
		t.Errorf("a container reached the control plane: exit %d\n%s%s", code, out, errOut)
	}
	if strings.Contains(env, "MANIFOLD") {
		t.Errorf("a container's environment holds the daemon's:\n%s", env)
	}
}

func dockerNames(t *testing.T, filters ...string) []string {
	t.Helper()
	args := []string{"ps", "--format", "{{.Names}}"}
	for _, f := range filters {
		args = append(args, "--filter", f)
	}
	out, err := exec.Command("docker", args...).Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

// removeInstance removes every container, network and volume a test's daemon made.
func removeInstance(t *testing.T, instance string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	filter := "label=manifold.instance=" + instance
	for _, kind := range []struct{ list, remove []string }{
		{[]string{"ps", "-aq"}, []string{"rm", "-f", "-v"}},
		{[]string{"network", "ls", "-q"}, []string{"network", "rm"}},
		{[]string{"volume", "ls", "-q"}, []string{"volume", "rm", "-f"}},
	} {
		out, err := exec.CommandContext(ctx, "docker", append(kind.list, "--filter", filter)...).Output()
		if err != nil {
			t.Errorf("docker %s: %v", strings.Join(kind.list, " "), err)
			continue
		}
		if ids := strings.Fields(string(out)); len(ids) > 0 {
			_ = exec.CommandContext(ctx, "docker", append(kind.remove, ids...)...).Run()
		}
	}
	if left := dockerNames(t, filter); len(left) > 0 {
		t.Errorf("containers left behind: %v", left)
	}
}

// startDaemonArgs starts this test binary as `manifold` with args, logging to state.
// Its client talks to the socket of state.
func startDaemonArgs(t testing.TB, state, routerAddr string, args ...string) *daemon {
	t.Helper()
	// A daemon run as root runs its process dynos as nobody, who must reach the
	// state dir: t.TempDir makes it and its parent 0700.
	for _, dir := range []string{state, filepath.Dir(state)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(state, "daemon.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MANIFOLD_TEST_EXEC=1")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{t: t, cmd: cmd, api: api.NewClient(socketAPI(state)), router: routerAddr, log: logFile, apiAddr: socketAPI(state)}
	t.Cleanup(func() {
		d.kill()
		logFile.Close()
		if t.Failed() {
			data, _ := os.ReadFile(logFile.Name())
			t.Logf("daemon log:\n%s", tail(string(data), 80))
		}
	})
	return d
}

// TestUpWaitsForTheDockerEngine starts the daemon while the engine's socket does not
// answer: it logs why and retries, and once the engine is there (a proxy to the real
// socket appears) it comes up.
func TestUpWaitsForTheDockerEngine(t *testing.T) {
	needDocker(t)
	instance := fmt.Sprintf("wait%d", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { removeInstance(t, instance) })
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	sock := filepath.Join(t.TempDir(), "docker.sock")
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	routerAddr := freeAddr(t)
	d := startDaemonArgs(t, state, routerAddr, "up", "--repo", repo, "--state", state,
		"--router", routerAddr, "--driver", "docker", "--docker-instance", instance)
	eventually(t, 30*time.Second, "the daemon says it waits for the engine", func() error {
		data, err := os.ReadFile(filepath.Join(state, "daemon.log"))
		if err != nil {
			return err
		}
		if !strings.Contains(string(data), "waiting for the Docker Engine") {
			return fmt.Errorf("log: %q", data)
		}
		return nil
	})
	if _, err := d.api.Status(context.Background()); err == nil {
		t.Fatal("the API answered before the driver could start")
	}
	proxyUnixSocket(t, sock, "/var/run/docker.sock")
	eventually(t, 60*time.Second, "the daemon is up once the engine answers", func() error {
		_, err := d.api.Status(context.Background())
		return err
	})
}

// proxyUnixSocket serves a unix socket at path that forwards every connection to target.
func proxyUnixSocket(t *testing.T, path, target string) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			client, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer client.Close()
				engine, err := net.Dial("unix", target)
				if err != nil {
					return
				}
				defer engine.Close()
				done := make(chan struct{}, 2)
				go func() { _, _ = io.Copy(engine, client); done <- struct{}{} }()
				go func() { _, _ = io.Copy(client, engine); done <- struct{}{} }()
				<-done
			}()
		}
	}()
}
