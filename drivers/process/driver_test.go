package process

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

func TestWebDynoServesAndHasHerokuEnv(t *testing.T) {
	t.Setenv("MANIFOLD_SECRET_OF_THE_DAEMON", "leak")
	h := newHarness(t, Options{})
	dyno := h.start(h.webSpec(1, map[string]string{"GREETING": "hi", "PORT": "1"}))
	if dyno.State != drivers.StateStarting || dyno.Name != "web.1" || !strings.HasPrefix(dyno.Addr, "127.0.0.1:") {
		t.Fatalf("Start returned %+v", dyno)
	}
	up := waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.To == drivers.StateUp })
	if up.From != drivers.StateStarting || up.Dyno.Addr != dyno.Addr {
		t.Fatalf("up event %+v", up)
	}
	if body := get(t, "http://"+dyno.Addr+"/"); body != "hello from web.1" {
		t.Fatalf("GET / = %q", body)
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(get(t, "http://"+dyno.Addr+"/env")), &env); err != nil {
		t.Fatal(err)
	}
	slugDir := filepath.Join(h.opts.SlugDir, h.key)
	port := strings.TrimPrefix(dyno.Addr, "127.0.0.1:")
	for key, want := range map[string]string{"PORT": port, "DYNO": "web.1", "PS": "web.1", "HOME": slugDir, "GREETING": "hi"} {
		if env[key] != want {
			t.Errorf("$%s = %q, want %q", key, env[key], want)
		}
	}
	if !strings.HasPrefix(env["PATH"], filepath.Join(slugDir, "bin")+":") {
		t.Errorf("$PATH = %q, want the slug's bin first", env["PATH"])
	}
	if _, leaked := env["MANIFOLD_SECRET_OF_THE_DAEMON"]; leaked {
		t.Error("the daemon's environment leaked into the dyno")
	}
	if pwd, err := os.Readlink("/proc/" + itoa(pidOf(h.d, dyno.ID)) + "/cwd"); err != nil || pwd != slugDir {
		t.Errorf("cwd %q (%v), want %q", pwd, err, slugDir)
	}

	line := h.sink.waitLine(t, "web.1", logs.SourceApp, "web listening on "+port)
	if line.App != "hello" || line.Env != "staging" || line.Time.Nanosecond()%1000 != 0 || line.Time.IsZero() {
		t.Errorf("app line %+v", line)
	}
	inOrder(t, h.sink.texts("web.1", logs.SourceHeroku),
		"State changed from down to starting",
		"Starting process with command `exec \"$TESTBIN\"`",
		"State changed from starting to up")
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestWorkerIsUpAtOnceAndLogsBothStreams(t *testing.T) {
	h := newHarness(t, Options{})
	dyno := h.start(h.spec("worker", 2, `hello; echo to-stderr >&2; echo "dyno=$DYNO port=$PORT"; exec sleep 60`, nil))
	up := waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	if up.Addr != "" {
		t.Errorf("a worker has Addr %q", up.Addr)
	}
	h.sink.waitLine(t, "worker.2", logs.SourceApp, "hello-from-slug-bin")
	h.sink.waitLine(t, "worker.2", logs.SourceApp, "to-stderr")
	line := h.sink.waitLine(t, "worker.2", logs.SourceApp, "dyno=worker.2 port=")
	if strings.HasSuffix(line.Text, "port=") {
		t.Errorf("worker has no $PORT: %q", line.Text)
	}
}

func TestCrashRestartsWithCooloff(t *testing.T) {
	var mu sync.Mutex
	var asked []int
	h := newHarness(t, Options{Cooloff: func(n int) time.Duration {
		mu.Lock()
		asked = append(asked, n)
		mu.Unlock()
		if n <= 1 {
			return 0
		}
		return 30 * time.Millisecond
	}})
	dyno := h.start(h.spec("worker", 1, `echo "boot $$"; exit 3`, nil))
	crash := waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.To == drivers.StateCrashed })
	if crash.Dyno.Reason != "Process exited with status 3" || crash.From != drivers.StateUp {
		t.Errorf("crash event %+v", crash)
	}
	restarted := waitState(t, h.d, dyno.ID, drivers.StateCrashed, func(d drivers.Dyno) bool { return d.Restarts >= 3 })
	if restarted.Reason != "Process exited with status 3" {
		t.Errorf("reason %q", restarted.Reason)
	}
	inOrder(t, h.sink.texts("worker.1", logs.SourceHeroku),
		"State changed from starting to up",
		"Process exited with status 3",
		"State changed from up to crashed",
		"State changed from crashed to starting",
		"Starting process with command `echo \"boot $$\"; exit 3`",
		"Process exited with status 3")
	if boots := h.sink.texts("worker.1", logs.SourceApp); len(boots) < 3 || boots[0] == boots[1] {
		t.Errorf("want a new process per restart, got %q", boots)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, n := range asked[:3] {
		if n != i+1 {
			t.Fatalf("cool-off asked for crashes %v, want 1, 2, 3, …", asked)
		}
	}
}

func TestCrashCounterResetsAfterStayingUp(t *testing.T) {
	var mu sync.Mutex
	var asked []int
	h := newHarness(t, Options{StableAfter: 100 * time.Millisecond, Cooloff: func(n int) time.Duration {
		mu.Lock()
		asked = append(asked, n)
		mu.Unlock()
		return 0
	}})
	dyno := h.start(h.spec("worker", 1, `sleep 0.3; exit 1`, nil))
	waitState(t, h.d, dyno.ID, drivers.StateUp, func(d drivers.Dyno) bool { return d.Restarts >= 2 })
	mu.Lock()
	defer mu.Unlock()
	for _, n := range asked {
		if n != 1 {
			t.Fatalf("cool-off asked for crashes %v, want always 1 (each run stayed up past StableAfter)", asked)
		}
	}
}

func TestBootTimeoutR10(t *testing.T) {
	h := newHarness(t, Options{BootTimeout: 300 * time.Millisecond, Cooloff: func(int) time.Duration { return time.Hour }})
	dyno := h.start(h.spec("web", 1, `echo not binding; exec sleep 60`, nil))
	ev := waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.To == drivers.StateCrashed })
	if ev.Code != "R10" || ev.From != drivers.StateStarting || ev.Dyno.Reason != "Error R10 (Boot timeout)" {
		t.Fatalf("event %+v", ev)
	}
	inOrder(t, h.sink.texts("web.1", logs.SourceHeroku),
		"Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 0.3 seconds of launch",
		"Stopping process with SIGKILL",
		"Process exited with status 137",
		"State changed from starting to crashed")
	h.sink.waitLine(t, "web.1", logs.SourceApp, "not binding")
	// Crashed with an hour of cool-off: Stop takes it down at once.
	if err := h.d.Stop(context.Background(), dyno.ID); err != nil {
		t.Fatal(err)
	}
	h.sink.waitLine(t, "web.1", logs.SourceHeroku, "State changed from crashed to down")
}

func TestHealthCheck(t *testing.T) {
	for _, tc := range []struct {
		path string
		want drivers.State
	}{
		{"/health", drivers.StateUp},
		{"/missing", drivers.StateCrashed},
	} {
		t.Run(tc.path, func(t *testing.T) {
			h := newHarness(t, Options{BootTimeout: time.Second, Cooloff: func(int) time.Duration { return time.Hour }})
			spec := h.webSpec(1, map[string]string{"BIND_DELAY": "50ms"})
			spec.HealthCheck = tc.path
			dyno := h.start(spec)
			ev := waitEvent(t, h.d, func(ev drivers.Event) bool {
				return ev.Dyno.ID == dyno.ID && (ev.To == drivers.StateUp || ev.To == drivers.StateCrashed)
			})
			if ev.To != tc.want {
				t.Fatalf("went %s, want %s (%+v)", ev.To, tc.want, ev)
			}
			if tc.want == drivers.StateCrashed {
				h.sink.waitLine(t, "web.1", logs.SourceHeroku, "Error R10 (Boot timeout) -> Web process did not answer GET /missing with 2xx within 1 seconds")
			}
		})
	}
}

func TestStopSendsSIGTERM(t *testing.T) {
	h := newHarness(t, Options{})
	dyno := h.start(h.webSpec(1, nil))
	waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	pid := pidOf(h.d, dyno.ID)
	if err := h.d.Stop(context.Background(), dyno.ID); err != nil {
		t.Fatal(err)
	}
	dynos, err := h.d.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(dynos) != 0 {
		t.Fatalf("List after Stop: %+v", dynos)
	}
	groupGone(t, pid)
	inOrder(t, h.sink.texts("web.1", logs.SourceHeroku),
		"Stopping all processes with SIGTERM",
		"Process exited with status 143",
		"State changed from up to down")
	for _, ext := range []string{".json", ".log"} {
		if _, err := os.Stat(filepath.Join(h.opts.StateDir, dyno.ID+ext)); !os.IsNotExist(err) {
			t.Errorf("%s%s left behind: %v", dyno.ID, ext, err)
		}
	}
	if err := h.d.Stop(context.Background(), dyno.ID); !errors.Is(err, ErrUnknownDyno) {
		t.Errorf("second Stop: %v", err)
	}
}

func TestStopKillsAfterGrace(t *testing.T) {
	h := newHarness(t, Options{})
	spec := h.spec("worker", 1, `trap '' TERM; sleep 60 & echo "child $!"; while :; do sleep 0.05; done`, nil)
	spec.StopTimeout = 200 * time.Millisecond
	dyno := h.start(spec)
	waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	h.sink.waitLine(t, "worker.1", logs.SourceApp, "child ")
	pgid := pidOf(h.d, dyno.ID)
	if err := h.d.Stop(context.Background(), dyno.ID); err != nil {
		t.Fatal(err)
	}
	ev := waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.To == drivers.StateDown })
	if ev.Code != "R12" {
		t.Errorf("down event code %q, want R12", ev.Code)
	}
	inOrder(t, h.sink.texts("worker.1", logs.SourceHeroku),
		"Stopping all processes with SIGTERM",
		"Error R12 (Exit timeout) -> At least one process failed to exit within 0.2 seconds of SIGTERM",
		"Stopping remaining processes with SIGKILL",
		"Process exited with status 137",
		"State changed from up to down")
	groupGone(t, pgid)
}

func TestKilledFromOutsideIsRestarted(t *testing.T) {
	h := newHarness(t, Options{})
	dyno := h.start(h.webSpec(1, nil))
	waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	pid := pidOf(h.d, dyno.ID)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	again := waitState(t, h.d, dyno.ID, drivers.StateUp, func(d drivers.Dyno) bool { return d.Restarts == 1 })
	if newPID := pidOf(h.d, dyno.ID); newPID == pid || newPID == 0 {
		t.Fatalf("pid %d after restart, was %d", newPID, pid)
	}
	if body := get(t, "http://"+again.Addr+"/"); body != "hello from web.1" {
		t.Fatalf("GET after restart = %q", body)
	}
	h.sink.waitLine(t, "web.1", logs.SourceHeroku, "Process exited with status 137")
}

func TestBadInput(t *testing.T) {
	h := newHarness(t, Options{})
	good := h.spec("worker", 1, "true", nil)
	for name, mutate := range map[string]func(*drivers.DynoSpec){
		"app name":     func(s *drivers.DynoSpec) { s.App = "../etc" },
		"env name":     func(s *drivers.DynoSpec) { s.Env = "a/b" },
		"type":         func(s *drivers.DynoSpec) { s.Type = "" },
		"index":        func(s *drivers.DynoSpec) { s.Index = 0 },
		"command":      func(s *drivers.DynoSpec) { s.Command = "" },
		"slug key":     func(s *drivers.DynoSpec) { s.SlugKey = "" },
		"config key":   func(s *drivers.DynoSpec) { s.Config = map[string]string{"A=B": "x"} },
		"config value": func(s *drivers.DynoSpec) { s.Config = map[string]string{"A": "x\x00y"} },
		"stop timeout": func(s *drivers.DynoSpec) { s.StopTimeout = -1 },
	} {
		t.Run(name, func(t *testing.T) {
			spec := good
			mutate(&spec)
			if _, err := h.d.Start(context.Background(), spec); !errors.Is(err, ErrInvalidSpec) {
				t.Fatalf("Start: %v, want ErrInvalidSpec", err)
			}
		})
	}
	t.Run("missing slug", func(t *testing.T) {
		spec := good
		spec.SlugKey, spec.SlugPath = "nope", filepath.Join(t.TempDir(), "nope.tgz")
		_, err := h.d.Start(context.Background(), spec)
		if err == nil || !strings.Contains(err.Error(), "app hello dyno worker.1") || !strings.Contains(err.Error(), "nope.tgz") {
			t.Fatalf("Start: %v", err)
		}
	})
	if _, err := New(context.Background(), Options{}); err == nil {
		t.Error("New without StateDir")
	}
	if _, err := New(context.Background(), Options{StateDir: t.TempDir(), PortMin: 10}); err == nil {
		t.Error("New with half a port range")
	}
	if dynos, err := h.d.List(context.Background()); err != nil || len(dynos) != 0 {
		t.Errorf("failed starts left dynos: %+v (%v)", dynos, err)
	}
	h.d.Close()
	if _, err := h.d.Start(context.Background(), good); !errors.Is(err, ErrClosed) {
		t.Errorf("Start after Close: %v", err)
	}
	if err := h.d.Stop(context.Background(), "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Stop after Close: %v", err)
	}
	if _, ok := <-h.d.Events(); ok {
		t.Error("Events not closed by Close")
	}
}

func TestPortRange(t *testing.T) {
	// A range of two free ports below the kernel's ephemeral range (32768 and up by
	// default): a port in it could be any dial's source port meanwhile, even the boot
	// probe's, and is then not free. A random start keeps parallel runs of this test
	// (other checkouts) apart.
	l := 0
	for port := 20000 + 2*rand.IntN(5000); port < 32000 && l == 0; port += 2 {
		if _, err := listenFree(port); err != nil {
			continue
		}
		if _, err := listenFree(port + 1); err == nil {
			l = port
		}
	}
	if l == 0 {
		t.Fatal("no two free ports below 32000")
	}
	h := newHarness(t, Options{PortMin: l, PortMax: l + 1})
	first := h.start(h.webSpec(1, nil))
	second := h.start(h.webSpec(2, nil))
	if first.Addr == second.Addr {
		t.Fatalf("both dynos on %s", first.Addr)
	}
	for _, dyno := range []drivers.Dyno{first, second} {
		waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	}
	if _, err := h.d.Start(context.Background(), h.webSpec(3, nil)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("third dyno in a range of two: %v", err)
	}
}
