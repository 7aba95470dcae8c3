package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/api"
	"golang.org/x/term"
)

// TestMain lets the end-to-end tests run this very binary as the daemon
// (`manifold up`), so that they can kill -9 it like a real one.
func TestMain(m *testing.M) {
	if os.Getenv("MANIFOLD_TEST_EXEC") == "1" {
		ctx, stop := signalContext()
		code := execute(ctx, os.Args[1:])
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// daemon is a `manifold up` subprocess.
type daemon struct {
	t      testing.TB
	cmd    *exec.Cmd
	api    *api.Client
	router string
	log    *os.File
	// apiAddr is the CLI's --api (the socket); webhook the webhook's address.
	apiAddr, webhook string
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startDaemon starts `manifold up` with its API on the socket of state only, and a
// webhook listener on a loopback port.
func startDaemon(t testing.TB, state, repoURL, routerAddr, interval string) *daemon {
	t.Helper()
	webhook := freeAddr(t)
	d := startDaemonArgs(t, state, routerAddr, "up", "--repo", repoURL, "--state", state,
		"--router", routerAddr, "--webhook", webhook, "--interval", interval, "--boot-timeout", "20s", "-v")
	d.webhook = webhook
	return d
}

// socketAPI is the CLI's --api for the daemon of state.
func socketAPI(state string) string {
	return "unix://" + filepath.Join(state, "manifold.sock")
}

func (d *daemon) kill() {
	if d.cmd.ProcessState == nil {
		_ = d.cmd.Process.Signal(syscall.SIGKILL)
		_ = d.cmd.Wait()
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// pollInterval is how often eventually looks again: short, as BenchmarkUpDeployLatency
// measures through it, and checks that run docker ps take longer than it anyway.
const pollInterval = 10 * time.Millisecond

// eventually calls check until it returns nil, and fails the test with check's last
// error when timeout passes first: the package's one way to wait for something.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(pollInterval)
	}
}

func (d *daemon) get(host string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+d.router+"/", nil)
	if err != nil {
		return "", err
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return string(body), fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return string(body), fmt.Errorf("status %d: %s", resp.StatusCode, body)
	}
	return string(body), nil
}

func (d *daemon) appStatus(app, env string) (reconciler.AppStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, err := d.api.Status(ctx)
	if err != nil {
		return reconciler.AppStatus{}, err
	}
	for _, s := range status.Apps {
		if s.App == app && s.Env == env {
			return s, nil
		}
	}
	return reconciler.AppStatus{}, fmt.Errorf("no status for %s (%s) yet", app, env)
}

// webPids returns the pids of the app's web dynos, by dyno name.
func (d *daemon) dynos(app, env string) (api.Ps, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return d.api.Ps(ctx, app, env)
}

const e2eApp = `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["go"]
  config = { GREETING = "%GREETING%" }
  process "web" {
    count = %WEB%
    health_check = "/healthz"
  }
}
`

func writeE2EApp(t *testing.T, repo, greeting string, web int) {
	t.Helper()
	spec := strings.NewReplacer("%GREETING%", greeting, "%WEB%", strconv.Itoa(web)).Replace(e2eApp)
	if err := os.WriteFile(filepath.Join(repo, "apps", "hello.hcl"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestUpEndToEnd drives the daemon on the process driver through a real git repo:
// deploy, scale, a broken commit, a killed dyno, kill -9 of the daemon and adoption,
// a one-off, a rollback and a failing release phase.
func TestUpEndToEnd(t *testing.T) {
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "src", "hello"), os.DirFS("../../examples/src/hello")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeE2EApp(t, repo, "hi", 1)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "add hello")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr, apiAddr := freeAddr(t), socketAPI(state)
	d := startDaemon(t, state, "file://"+repo, routerAddr, "500ms")
	host := "hello.default.localhost"

	eventually(t, 120*time.Second, "hello answers through the router", func() error {
		body, err := d.get(host)
		if err == nil && !strings.Contains(body, "hi from web.1") {
			return fmt.Errorf("body %q", body)
		}
		return err
	})

	// Scale 1 -> 3: three web processes.
	writeE2EApp(t, repo, "hi", 3)
	git(t, repo, "commit", "-q", "-am", "scale web to 3")
	eventually(t, 60*time.Second, "three web dynos up", func() error {
		ps, err := d.dynos("hello", "default")
		if err != nil {
			return err
		}
		up := 0
		for _, dyno := range ps.Dynos {
			if dyno.State == "up" {
				up++
			}
		}
		if up != 3 {
			return fmt.Errorf("%d up of %d", up, len(ps.Dynos))
		}
		return nil
	})

	// A dyno killed from outside is restarted, and the platform says so in the logs.
	killed := dynoPid(t, state, "hello.default.web.2.")
	if err := syscall.Kill(-killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "web.2 restarted after kill -9", func() error {
		if pid := dynoPid(t, state, "hello.default.web.2."); pid == killed || pid == 0 {
			return fmt.Errorf("web.2 pid %d (killed %d)", pid, killed)
		}
		ps, err := d.dynos("hello", "default")
		if err != nil {
			return err
		}
		for _, dyno := range ps.Dynos {
			if dyno.Name == "web.2" && dyno.State != "up" {
				return fmt.Errorf("web.2 is %s", dyno.State)
			}
		}
		return nil
	})
	code, out, errOut := runCLI(t, "--api", apiAddr, "logs", "-a", "hello", "--ps", "web.2", "--source", "heroku", "-n", "50")
	if code != 0 || !strings.Contains(out, "heroku[web.2]: State changed from up to crashed") {
		t.Errorf("logs after a crash (exit %d):\n%s%s", code, out, errOut)
	}

	// logs --tail streams router lines as requests arrive.
	tailCtx, stopTail := context.WithCancel(context.Background())
	tailOut := &lockedBuffer{}
	tailDone := make(chan int, 1)
	go func() {
		root := newRootCmd()
		root.SetOut(tailOut)
		root.SetErr(tailOut)
		root.SetArgs([]string{"--api", apiAddr, "logs", "-a", "hello", "--ps", "router", "--tail", "-n", "0"})
		tailDone <- exitCode(root.ExecuteContext(tailCtx), tailOut)
	}()
	eventually(t, 30*time.Second, "logs --tail shows a new router line", func() error {
		req, err := http.NewRequest(http.MethodGet, "http://"+routerAddr+"/tail-probe", nil)
		if err != nil {
			return err
		}
		req.Host = host
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
		if !strings.Contains(tailOut.String(), `heroku[router]: at=info method=GET path="/tail-probe"`) {
			return fmt.Errorf("tail output %q", tailOut.String())
		}
		return nil
	})
	stopTail()
	<-tailDone

	// A broken commit: status names the error, the app keeps answering.
	if err := os.WriteFile(filepath.Join(repo, "apps", "broken.hcl"), []byte("app \"broken\" {\n  size = 3\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "a broken spec")
	eventually(t, 30*time.Second, "status reports the broken commit", func() error {
		status, err := d.api.Status(context.Background())
		if err != nil {
			return err
		}
		if !strings.Contains(status.Error, "apps/broken.hcl:2:3") {
			return fmt.Errorf("status error %q", status.Error)
		}
		return nil
	})
	if _, err := d.get(host); err != nil {
		t.Fatalf("hello stopped answering after a broken commit: %v", err)
	}
	git(t, repo, "rm", "-q", "apps/broken.hcl")
	git(t, repo, "commit", "-q", "-m", "drop the broken spec")

	// kill -9 the daemon; a new one adopts the same dynos.
	before, err := d.dynos("hello", "default")
	if err != nil {
		t.Fatal(err)
	}
	d.kill()
	d2 := startDaemon(t, state, "file://"+repo, routerAddr, "500ms")
	eventually(t, 30*time.Second, "the new daemon answers with adopted dynos", func() error {
		if _, err := d2.get(host); err != nil {
			return err
		}
		after, err := d2.dynos("hello", "default")
		if err != nil {
			return err
		}
		if fmt.Sprint(dynoIDs(after)) != fmt.Sprint(dynoIDs(before)) {
			return fmt.Errorf("dynos %v, want the adopted %v", dynoIDs(after), dynoIDs(before))
		}
		return nil
	})

	// A one-off passes its exit code through and is never restarted.
	code, out, errOut = runCLI(t, "--api", apiAddr, "run", "-a", "hello", "--", "echo one-off $DYNO; exit 3")
	if code != 3 || !strings.Contains(out, "one-off run.1") {
		t.Errorf("run: exit %d, output %q %q; want 3 and the one-off's output", code, out, errOut)
	}
	// Its stdin is manifold's (data piped in), and output that is not text comes back
	// byte for byte.
	oneOff := `read name; echo "hello $name from $DYNO"; printf '\377\000\001'; cat >&2`
	code, out, errOut = runCLIWithStdin(t, strings.NewReader("world\nto stderr\n"), "--api", apiAddr, "run", "-a", "hello", "--", oneOff)
	if want := "hello world from run.2\n\xff\x00\x01"; code != 0 || out != want || errOut != "to stderr\n" {
		t.Errorf("run with stdin: exit %d, stdout %q, stderr %q; want 0, %q, %q", code, out, errOut, want, "to stderr\n")
	}

	// The words typed reach the dyno whole, and exit codes pass through.
	checkRunArguments(t, apiAddr)

	// From a terminal, the one-off gets one of the same size and TERM, and manifold's
	// terminal is raw while it runs and restored after.
	runOnATerminal(t, apiAddr)

	// A failing release phase keeps the previous release serving.
	procfile := filepath.Join(repo, "src", "hello", "Procfile")
	if err := os.WriteFile(procfile, []byte("web: hello web\nworker: hello worker\nrelease: echo migrating; exit 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeE2EApp(t, repo, "new", 3)
	git(t, repo, "commit", "-q", "-am", "a release that fails")
	eventually(t, 120*time.Second, "the failed release is reported", func() error {
		s, err := d2.appStatus("hello", "default")
		if err != nil {
			return err
		}
		if s.State != reconciler.StateStalled || !strings.Contains(s.Reason, "exited with status 1") {
			return fmt.Errorf("status %+v", s)
		}
		return nil
	})
	if body, err := d2.get(host); err != nil || !strings.Contains(body, "hi from") {
		t.Errorf("after a failed release: %q, %v; want the old greeting", body, err)
	}

	// Rollback to v1 (from v2 = scale? no: scaling is not a release; v1 is the deploy).
	ctx := context.Background()
	releases, err := d2.api.Releases(ctx, "hello", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(releases.Releases) != 2 || releases.Releases[0].Status != "failed" {
		t.Fatalf("releases = %+v, want v2 failed and v1", releases.Releases)
	}
	// plan --live shows what the failed release would have changed in what runs.
	code, out, errOut = runCLI(t, "--api", apiAddr, "plan", "--live")
	if code != 2 || !strings.Contains(out, `~ config GREETING: "hi" -> "new"`) {
		t.Errorf("plan --live after a failed release: exit %d\n%s%s", code, out, errOut)
	}

	rolled, err := d2.api.Rollback(ctx, "hello", api.RollbackRequest{Version: 1})
	if err != nil || rolled.Version != 3 {
		t.Fatalf("rollback: v%d, %v", rolled.Version, err)
	}
	if body, err := d2.get(host); err != nil || !strings.Contains(body, "hi from") {
		t.Errorf("after rollback: %q, %v", body, err)
	}
	_, _, errOut = runCLI(t, "--api", apiAddr, "plan", "--live")
	if !strings.Contains(errOut, "hello (default) is pinned to v3 by a rollback") {
		t.Errorf("plan --live after a rollback does not say the app is pinned:\n%s", errOut)
	}
	code, out, _ = runCLI(t, "--api", apiAddr, "status")
	if code != 0 || !strings.Contains(out, "pinned to v3") {
		t.Errorf("status after a rollback (exit %d):\n%s", code, out)
	}
}

// killDynos kills the process groups of the dynos a SIGKILLed daemon left behind, from
// the process driver's state files, so that the test leaves no process running.
func killDynos(stateDir string) {
	files, _ := filepath.Glob(filepath.Join(stateDir, "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var state struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(data, &state) == nil && state.PID > 0 {
			_ = syscall.Kill(-state.PID, syscall.SIGKILL)
		}
	}
}

// dynoPid reads the pid of the dyno whose id starts with prefix from the process
// driver's state files (0 when none).
func dynoPid(t *testing.T, state, prefix string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(state, "dynos", prefix+"*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		var st struct {
			PID int `json:"pid"`
		}
		if json.Unmarshal(data, &st) == nil && st.PID > 0 {
			return st.PID
		}
	}
	return 0
}

// lockedBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func dynoIDs(ps api.Ps) []string {
	var ids []string
	for _, d := range ps.Dynos {
		ids = append(ids, d.Name+"="+d.ID)
	}
	slices.Sort(ids)
	return ids
}

// SIGTERM ends the daemon cleanly (exit 0) even while a client follows logs: the
// requests' contexts end with the daemon, so the API's shutdown does not wait them out.
func TestUpStopsCleanlyWithATailOpen(t *testing.T) {
	t.Parallel()
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, t.TempDir(), repo, freeAddr(t), "1h")
	var resp *http.Response
	eventually(t, 30*time.Second, "a log tail", func() error {
		var err error
		resp, err = d.api.HTTP.Get(d.api.BaseURL + "/v1/apps/hello/logs?tail=true")
		return err
	})
	defer resp.Body.Close()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := d.cmd.Wait()
	if err != nil {
		data, _ := os.ReadFile(d.log.Name())
		t.Errorf("manifold up after SIGTERM with a tail open: %v (want exit 0)\n%s", err, tail(string(data), 20))
	}
}

// `manifold reconcile` exits non-zero when an app it reports is Stalled, as
// `flux reconcile` does: a deploy that failed is not a success to a script.
func TestReconcileExitCode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		state string
		want  int
	}{
		{"ready", reconciler.StateReady, 0},
		{"stalled", reconciler.StateStalled, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_ = json.NewEncoder(w).Encode(reconciler.Status{Apps: []reconciler.AppStatus{
					{App: "hello", Env: "staging", State: tt.state, Release: 2, Reason: "v3 failed: R10"},
				}})
			}))
			defer srv.Close()
			root := newRootCmd()
			var out, errOut bytes.Buffer
			root.SetOut(&out)
			root.SetArgs([]string{"reconcile", "-a", "hello", "--api", srv.URL})
			code := exitCode(root.ExecuteContext(context.Background()), &errOut)
			if code != tt.want || !strings.Contains(out.String(), "hello (staging): "+tt.state) {
				t.Errorf("exit %d (%s), output %q; want exit %d", code, errOut.String(), out.String(), tt.want)
			}
		})
	}
}

// runOnATerminal runs `manifold run` with a pseudo-terminal of 30x90 as its stdin and
// stdout, types a line into it, and checks what the one-off saw and printed.
func runOnATerminal(t *testing.T, apiAddr string) {
	t.Helper()
	t.Setenv("TERM", "xterm-256color")
	controller, tty, err := process.OpenPTY(drivers.TerminalSize{Rows: 30, Cols: 90})
	if err != nil {
		t.Fatal(err)
	}
	defer controller.Close()
	defer tty.Close()
	var output lockedBuffer
	began := time.Now()
	firstByte := make(chan time.Duration, 1) // a figure for the log, not asserted
	// Copies the terminal's output until controller closes, and types a line as soon as
	// the one-off says it waits for it (the Enter key is "\r" on a raw terminal): the
	// read that brings "ready" is the signal, no polling.
	go func() {
		buf := make([]byte, 4096)
		typed := false
		for {
			n, err := controller.Read(buf)
			if n > 0 && output.String() == "" {
				firstByte <- time.Since(began)
			}
			_, _ = output.Write(buf[:n])
			if !typed && strings.Contains(output.String(), "ready") {
				typed = true
				_, _ = io.WriteString(controller, "hello\r")
			}
			if err != nil {
				return
			}
		}
	}()
	root := newRootCmd()
	var stderr bytes.Buffer
	root.SetIn(tty)
	root.SetOut(tty)
	root.SetErr(&stderr)
	root.SetArgs([]string{"--api", apiAddr, "run", "-a", "hello", "--", `echo ready; read x; stty size; echo "on $TERM, got $x"; exit 6`})
	code := exitCode(root.ExecuteContext(context.Background()), &stderr)
	if code != 6 {
		t.Errorf("run on a terminal: exit %d, %q; want 6", code, stderr.String())
	}
	select {
	case d := <-firstByte:
		t.Logf("interactive manifold run: first byte after %s", d.Round(time.Millisecond))
	default:
	}
	if !term.IsTerminal(int(tty.Fd())) {
		t.Fatal("the test's terminal is gone")
	}
	// Back to cooked mode: output gets "\r\n" again.
	if _, err := io.WriteString(tty, "after\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the terminal back in cooked mode", func() error {
		if !strings.Contains(output.String(), "after\r\n") {
			return fmt.Errorf("terminal output %q", output.String())
		}
		return nil
	})
	for _, want := range []string{"30 90\r\n", "on xterm-256color, got hello\r\n", "after\r\n"} {
		if !strings.Contains(output.String(), want) {
			t.Errorf("terminal output %q lacks %q", output.String(), want)
		}
	}
}

// checkRunArguments runs one-offs whose arguments hold spaces, quotes, $, ; and an
// empty string (heroku run's quoting), on whichever driver the daemon at apiAddr runs.
func checkRunArguments(t *testing.T, apiAddr string) {
	t.Helper()
	tests := []struct {
		args     []string
		wantOut  string
		wantCode int
	}{
		{[]string{"sh", "-c", "exit 4"}, "", 4},
		{[]string{"sh", "-c", `echo "one two"`}, "one two\n", 0},
		{[]string{"printf", "[%s]", "a b", "it's", "$HOME", "x;exit 9", ""}, "[a b][it's][$HOME][x;exit 9][]", 0},
		{[]string{"echo $DYNO; exit 5"}, "run.", 5},
	}
	for _, tt := range tests {
		args := append([]string{"--api", apiAddr, "run", "--no-stdin", "-a", "hello", "--"}, tt.args...)
		code, out, errOut := runCLI(t, args...)
		if code != tt.wantCode || !strings.HasPrefix(out, tt.wantOut) || (tt.wantOut != "run." && out != tt.wantOut) {
			t.Errorf("run %q: exit %d, stdout %q, stderr %q; want exit %d, stdout %q", tt.args, code, out, errOut, tt.wantCode, tt.wantOut)
		}
	}
}
