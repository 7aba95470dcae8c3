package process

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// roleEnv makes the test binary play a part instead of running tests: a tiny web
// server dyno (no external dependency), or a mini daemon that a test kills with -9.
const roleEnv = "MANIFOLD_PROCESS_TEST_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "":
		os.Exit(m.Run())
	case "web":
		webRole()
	case "daemon":
		daemonRole()
	case "hog":
		hogRole()
	case "chatty":
		chattyRole()
	default:
		fmt.Fprintln(os.Stderr, "unknown role", os.Getenv(roleEnv))
		os.Exit(2)
	}
}

// webRole serves / (hello from $DYNO), /env (the environment as JSON) and /health.
func webRole() {
	port := os.Getenv("PORT")
	if delay, err := time.ParseDuration(os.Getenv("BIND_DELAY")); err == nil {
		// A slow bind is the behaviour under test (the boot timeout), not a wait.
		time.Sleep(delay)
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+port)
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Println("web listening on", port)
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello from %s", os.Getenv("DYNO"))
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	mux.HandleFunc("/missing", http.NotFound)
	mux.HandleFunc("/env", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		_ = json.NewEncoder(w).Encode(env)
	})
	_ = http.Serve(l, mux)
	os.Exit(1)
}

// daemonRole starts the dyno described by DAEMON_SPEC in DAEMON_STATE, prints
// "READY <id> <pid>" once it is up and waits to be killed.
func daemonRole() {
	var spec drivers.DynoSpec
	if err := json.Unmarshal([]byte(os.Getenv("DAEMON_SPEC")), &spec); err != nil {
		fmt.Println("spec:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	d, err := New(ctx, Options{StateDir: os.Getenv("DAEMON_STATE"), SlugDir: os.Getenv("DAEMON_SLUGS")})
	if err != nil {
		fmt.Println("new:", err)
		os.Exit(2)
	}
	dyno, err := d.Start(ctx, spec)
	if err != nil {
		fmt.Println("start:", err)
		os.Exit(2)
	}
	for ev := range d.Events() {
		if ev.Dyno.ID == dyno.ID && ev.To == drivers.StateUp {
			break
		}
	}
	d.mu.Lock()
	pid := d.dynos[dyno.ID].pid
	d.mu.Unlock()
	fmt.Println("READY", dyno.ID, pid)
	select {}
}

// hogRole allocates HOG_MB MiB outside the Go heap (no race-detector shadow, no GC)
// and writes every page, so its resident set grows by that much; then, on SIGUSR1
// (see hogMore), it takes HOG_MORE_MB more. It sleeps after.
func hogRole() {
	// Catch SIGUSR1 before anything else: its default action would kill the process.
	more := make(chan os.Signal, 1)
	signal.Notify(more, syscall.SIGUSR1)
	hog := func(mib int) {
		if mib <= 0 {
			return
		}
		mem, err := syscall.Mmap(-1, 0, mib<<20, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
		if err != nil {
			fmt.Println("mmap:", err)
			os.Exit(1)
		}
		for i := 0; i < len(mem); i += os.Getpagesize() {
			mem[i] = 1
		}
	}
	first, err := strconv.Atoi(os.Getenv("HOG_MB"))
	if err != nil {
		fmt.Println("HOG_MB:", err)
		os.Exit(2)
	}
	hog(first)
	fmt.Println("hog holds", first, "MiB more")
	if extra, err := strconv.Atoi(os.Getenv("HOG_MORE_MB")); err == nil && extra > 0 {
		<-more
		hog(extra)
		fmt.Println("hog holds", extra, "MiB more")
	}
	// The role must stay alive (and resident) until the driver kills it; this sleep
	// is the role's work, not a wait for something.
	for {
		time.Sleep(time.Hour)
	}
}

// chattyRole writes a line every LINE_EVERY, each with its own write(2), as a busy
// app's request log does.
func chattyRole() {
	every, err := time.ParseDuration(os.Getenv("LINE_EVERY"))
	if err != nil {
		fmt.Println("LINE_EVERY:", err)
		os.Exit(2)
	}
	ticker := time.NewTicker(every)
	for i := 1; ; i++ {
		<-ticker.C
		fmt.Printf("request %d served in 12ms\n", i)
	}
}
