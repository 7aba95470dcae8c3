package metrics_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/router"
)

// benchBackendEnv makes the test binary a trivial dyno on the address it names, so
// that the dyno's CPU is not the routers' process's.
const benchBackendEnv = "MANIFOLD_METRICS_BENCH_BACKEND"

func TestMain(m *testing.M) {
	if addr := os.Getenv(benchBackendEnv); addr != "" {
		err := http.ListenAndServe(addr, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") }))
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// BenchmarkRouterMetricsCost runs wrk against two routers in this process, one with
// metrics and one without, in 5 alternating rounds of 3 s against the same dyno, and
// reports each one's median requests/s and their ratio (goal: metrics on >= 0.97).
func BenchmarkRouterMetricsCost(b *testing.B) {
	if _, err := exec.LookPath("wrk"); err != nil {
		b.Fatal("wrk not found: make deps installs it")
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	backendAddr := freeAddr(b)
	backend := exec.Command(self)
	backend.Env = append(os.Environ(), benchBackendEnv+"="+backendAddr)
	if err := backend.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = backend.Process.Kill()
		_ = backend.Wait()
	})
	eventually(b, 10*time.Second, "the dyno listening", func() error {
		conn, err := net.Dial("tcp", backendAddr)
		if err != nil {
			return err
		}
		return conn.Close()
	})
	table := router.Table{Hosts: map[string]*router.Route{
		"127.0.0.1": {App: "shop", Env: "production", Backends: []router.Backend{{Dyno: "web.1", Addr: backendAddr}}},
	}}
	serve := func(opts router.Options) string {
		rt := router.New(opts)
		rt.Swap(table)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- rt.Serve(ctx, ln) }()
		b.Cleanup(func() { cancel(); <-done })
		return "http://127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port) + "/"
	}
	targets := []struct{ name, url string }{
		{"metrics-off", serve(router.Options{})},
		{"metrics-on", serve(router.Options{Metrics: metrics.New(metrics.Options{})})},
	}
	rps := map[string][]float64{}
	cpuPerReq := map[string][]float64{} // µs of this process's CPU per request: the router's
	b.ResetTimer()
	for _, tg := range targets {
		wrk(b, tg.url, "1s") // warm the keep-alive pools
	}
	for range 5 {
		for _, tg := range targets {
			before := processCPU(b)
			r := wrk(b, tg.url, "3s")
			rps[tg.name] = append(rps[tg.name], r)
			cpuPerReq[tg.name] = append(cpuPerReq[tg.name], float64((processCPU(b)-before).Microseconds())/(r*3))
		}
	}
	b.StopTimer()
	off, on := median(rps["metrics-off"]), median(rps["metrics-on"])
	offCPU, onCPU := median(cpuPerReq["metrics-off"]), median(cpuPerReq["metrics-on"])
	b.Logf("wrk -t2 -c64 -d3s, median of 5 alternating rounds: metrics off %.0f req/s %v, on %.0f req/s %v, on/off = %.3f; router CPU per request off %.1f µs, on %.1f µs",
		off, rps["metrics-off"], on, rps["metrics-on"], on/off, offCPU, onCPU)
	b.ReportMetric(off, "off-req/s")
	b.ReportMetric(on, "on-req/s")
	b.ReportMetric(on/off, "on/off")
	b.ReportMetric(offCPU, "off-cpu-us/req")
	b.ReportMetric(onCPU, "on-cpu-us/req")
}

// processCPU is this process's user and system time so far (/proc/self/stat, in
// clock ticks of 10 ms).
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	stat, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Fatal(err)
	}
	// The command name (field 2) may hold spaces; fields count from after its ")".
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("parse /proc/self/stat: %v %v", err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

var wrkRequests = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)

func wrk(b *testing.B, url, duration string) float64 {
	b.Helper()
	out, err := exec.Command("wrk", "-t2", "-c64", "-d"+duration, url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk: %v\n%s", err, out)
	}
	m := wrkRequests.FindSubmatch(out)
	if m == nil {
		b.Fatalf("wrk printed no Requests/sec:\n%s", out)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

func median(values []float64) float64 {
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}

func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// BenchmarkRequestRecord is what metrics add to each proxied request: one
// App.Request (counters, histogram, the minute's history). Compare with the router's
// own CPU per request (BenchmarkCompareWrk's "proxy CPU/req", about 20 µs).
func BenchmarkRequestRecord(b *testing.B) {
	app := metrics.New(metrics.Options{}).App("shop", "production")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			app.Request(200+i%3*100, "", time.Duration(i%500)*time.Millisecond)
		}
	})
}
