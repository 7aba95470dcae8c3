package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"

	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// nopWriter is a minimal ResponseWriter for driving ServeHTTP directly.
type nopWriter struct {
	h      http.Header
	status int
}

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *nopWriter) WriteHeader(status int)      { w.status = status }

// BenchmarkRouterProxy measures one proxied GET through ServeHTTP to a real dyno on
// 127.0.0.1 over the keep-alive pool (the dyno's server runs in this process, so its
// allocations count too).
func BenchmarkRouterProxy(b *testing.B) {
	r := New(Options{Logs: discardSink{}})
	r.Swap(oneApp(0, startBackend(b, okHandler())))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := &nopWriter{h: http.Header{}}
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodGet, "/", nil)
			req.Host = appHost
			req.RemoteAddr = "127.0.0.1:40000"
			req.RequestURI = "/"
			clear(w.h)
			r.ServeHTTP(w, req)
			if w.status != 200 {
				b.Fatalf("status %d", w.status)
			}
		}
	})
}

// BenchmarkRouterServe measures one proxied keep-alive GET through the router's own
// HTTP/1.1 server (Serve) on 127.0.0.1 to a real dyno in this process: the client
// side is a raw connection that writes the request and reads until the body, so
// nearly all allocations counted are the router's and the dyno's.
func BenchmarkRouterServe(b *testing.B) {
	r := New(Options{Logs: discardSink{}})
	r.Swap(oneApp(0, startBackend(b, okHandler())))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, ln) }()
	defer func() { cancel(); <-served }()
	request := []byte("GET / HTTP/1.1\r\nHost: " + appHost + "\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		for pb.Next() {
			if _, err := c.Write(request); err != nil {
				b.Error(err)
				return
			}
			n := 0
			for !bytes.HasSuffix(buf[:n], []byte("\r\n\r\nok")) {
				m, err := c.Read(buf[n:])
				if err != nil {
					b.Errorf("read response: %v (%q)", err, buf[:n])
					return
				}
				n += m
			}
			if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 200 ")) {
				b.Errorf("response %q", buf[:n])
				return
			}
		}
	})
}

// okHandler answers "ok", the trivial dyno of the benchmarks.
func okHandler() http.Handler {
	ok := []byte("ok")
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(ok) })
}

// discardSink drops router lines, after they were formatted.
type discardSink struct{}

func (discardSink) Publish(logs.Line) {}

// wrk settings shared by every target of the comparison, and how many times the
// targets take turns.
const (
	wrkThreads     = "2"
	wrkConnections = "64"
	wrkDuration    = "3s"
	compareRounds  = 5
)

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	// cpuPerReq is the proxy's CPU time (user+system) per request during the run;
	// zero for the direct target. On a shared machine it is steadier than req/s.
	cpuPerReq time.Duration
	// dynoCPUPerReq is the dyno's: what the proxy's own headers cost the app.
	dynoCPUPerReq time.Duration
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// groupCPU is the CPU time so far of the processes in process group pgid (nginx's
// master and workers), from /proc.
func groupCPU(pgid int) time.Duration {
	entries, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid pgrp … utime(14) stime(15).
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+2:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		if pg, _ := strconv.Atoi(f[2]); pg != pgid {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * (time.Second / 100) // USER_HZ is 100 on Linux
}

var (
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkPercent = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
)

// runWrk loads url for duration with the shared settings and parses wrk's report.
func runWrk(b *testing.B, url, duration string) wrkResult {
	b.Helper()
	return runWrkWith(b, url, duration, wrkThreads, wrkConnections)
}

// runWrkWith loads url with the given threads and connections.
func runWrkWith(b *testing.B, url, duration, threads, connections string) wrkResult {
	b.Helper()
	out, err := exec.Command("wrk", "-t", threads, "-c", connections, "-d", duration, "--latency",
		"-H", "Host: "+appHost, url).CombinedOutput()
	if err != nil {
		b.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	text := string(out)
	if strings.Contains(text, "Non-2xx") || strings.Contains(text, "Socket errors") {
		b.Fatalf("wrk %s saw errors:\n%s", url, text)
	}
	var res wrkResult
	m := wrkRPS.FindStringSubmatch(text)
	if m == nil {
		b.Fatalf("wrk %s: no Requests/sec in:\n%s", url, text)
	}
	res.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range wrkPercent.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[p[3]]
		d := time.Duration(v * float64(unit))
		if p[1] == "50" {
			res.p50 = d
		} else {
			res.p99 = d
		}
	}
	if res.p50 == 0 || res.p99 == 0 {
		b.Fatalf("wrk %s: no latency distribution in:\n%s", url, text)
	}
	return res
}

// freeAddr reserves a 127.0.0.1 port for a process that binds it itself.
func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitListening polls until addr accepts connections.
func waitListening(b *testing.B, addr string) {
	b.Helper()
	eventually(b, 10*time.Second, "something listening on "+addr, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	})
}

// startProcess runs cmd in its own process group until the benchmark ends, then
// stops the whole group (nginx's workers too): SIGTERM, and SIGKILL after 5 s.
func startProcess(b *testing.B, cmd *exec.Cmd, logFile string) int {
	b.Helper()
	out, err := os.Create(logFile)
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", cmd.Path, err)
	}
	b.Cleanup(func() {
		pgid := cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		_ = out.Close()
	})
	return cmd.Process.Pid
}

// nginxConf is a keep-alive reverse proxy to one upstream, as an operator would tune
// it: one worker per core (auto), keep-alive upstream pool, HTTP/1.1 upstream with the
// Connection header cleared. Arguments: directory, upstream, listen address, then the
// http-level and location-level lines of an nginxJob.
const nginxConf = `worker_processes auto;
error_log %[1]s/error.log warn;
pid %[1]s/nginx.pid;
events { worker_connections 4096; }
http {
%[4]s
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	upstream dyno {
		server %[2]s;
		keepalive 128;
	}
	server {
		listen %[3]s;
		location / {
			proxy_pass http://dyno;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host $host;
%[5]s
		}
	}
}
`

// nginxJob is how much of the router's work nginx is configured to do.
type nginxJob int

const (
	// nginxBare forwards and logs nothing.
	nginxBare nginxJob = iota
	// nginxSameJob sends the dyno the headers the router sends and writes one
	// Heroku-style access-log line per request (buffered, as an operator would).
	nginxSameJob
)

func (j nginxJob) http(dir string) string {
	if j == nginxBare {
		return "\taccess_log off;"
	}
	return `	log_format heroku 'at=info method=$request_method path="$request_uri" host=$host request_id=$request_id fwd="$remote_addr" dyno=web.1 connect=0ms service=${request_time}s status=$status bytes=$bytes_sent protocol=$scheme';
	access_log ` + dir + `/access.log heroku buffer=64k;`
}

func (j nginxJob) location() string {
	if j == nginxBare {
		return ""
	}
	return `			proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
			proxy_set_header X-Forwarded-Proto $scheme;
			proxy_set_header X-Forwarded-Port $server_port;
			proxy_set_header X-Request-Start "t=${msec}";
			proxy_set_header X-Request-Id $request_id;
			proxy_set_header Via "1.1 nginx";`
}

// BenchmarkCompareWrk is the peer comparison of make bench: one trivial dyno (this
// test binary in its own process, answering "ok") loaded by wrk with the same threads,
// connections and duration (a) directly, (b) through manifold's router, (c) through
// nginx as a bare keep-alive reverse proxy and (d) through nginx doing the router's
// job: the same headers to the dyno (X-Forwarded-*, X-Request-Start, X-Request-Id,
// Via) and one access-log line per request. The targets take turns for
// compareRounds rounds, so a busy moment of this shared machine hits all of them, and
// the table gives each one's median. It reports the ratios router/direct,
// router/nginx and router/nginx-same-job, and the p99 latency the router adds.
func BenchmarkCompareWrk(b *testing.B) {
	for _, tool := range []string{"wrk", "nginx"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Fatalf("%s not found: make deps installs wrk and nginx-light", tool)
		}
	}
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	backendAddr := freeAddr(b)
	backend := exec.Command(self)
	backend.Env = append(os.Environ(), benchBackendEnv+"="+backendAddr)
	backendPgid := startProcess(b, backend, filepath.Join(b.TempDir(), "backend.log"))
	waitListening(b, backendAddr)

	r := New(Options{Logs: discardSink{}})
	r.Swap(oneApp(0, backendAddr))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.Serve(ctx, ln) }()
	b.Cleanup(func() { cancel(); <-served })

	startNginx := func(job nginxJob) (string, int) {
		dir := b.TempDir()
		addr := freeAddr(b)
		conf := filepath.Join(dir, "nginx.conf")
		text := fmt.Sprintf(nginxConf, dir, backendAddr, addr, job.http(dir), job.location())
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			b.Fatal(err)
		}
		pgid := startProcess(b, exec.Command("nginx", "-p", dir, "-c", conf, "-g", "daemon off;"), filepath.Join(dir, "nginx.out"))
		waitListening(b, addr)
		return addr, pgid
	}
	nginxAddr, nginxPgid := startNginx(nginxBare)
	sameJobAddr, sameJobPgid := startNginx(nginxSameJob)

	targets := []struct {
		name, url string
		cpu       func() time.Duration
	}{
		{"direct", "http://" + backendAddr + "/", nil},
		{"router", "http://" + ln.Addr().String() + "/", selfCPU},
		{"nginx", "http://" + nginxAddr + "/", func() time.Duration { return groupCPU(nginxPgid) }},
		{"nginx-same-job", "http://" + sameJobAddr + "/", func() time.Duration { return groupCPU(sameJobPgid) }},
	}
	runs := map[string][]wrkResult{}
	b.ResetTimer()
	for _, tg := range targets {
		runWrk(b, tg.url, "1s") // warm the keep-alive pools
	}
	seconds, _ := time.ParseDuration(wrkDuration)
	for range compareRounds {
		for _, tg := range targets {
			var before time.Duration
			if tg.cpu != nil {
				before = tg.cpu()
			}
			dynoBefore := groupCPU(backendPgid)
			res := runWrk(b, tg.url, wrkDuration)
			requests := time.Duration(max(res.rps*seconds.Seconds(), 1))
			if tg.cpu != nil {
				res.cpuPerReq = (tg.cpu() - before) / requests
			}
			res.dynoCPUPerReq = (groupCPU(backendPgid) - dynoBefore) / requests
			runs[tg.name] = append(runs[tg.name], res)
		}
	}
	// One connection, one request at a time: the latency each proxy adds to a
	// request, without the queueing of a saturated machine (where the dyno's own p99
	// dominates).
	single := map[string]wrkResult{}
	for _, tg := range targets {
		single[tg.name] = runWrkWith(b, tg.url, "2s", "1", "1")
	}
	b.StopTimer()

	results := map[string]wrkResult{}
	for name, rs := range runs {
		results[name] = medianResult(rs)
	}
	direct, router, nginx, sameJob := results["direct"], results["router"], results["nginx"], results["nginx-same-job"]
	var table strings.Builder
	w := bufio.NewWriter(&table)
	fmt.Fprintf(w, "\nwrk -t%s -c%s -d%s --latency, one trivial dyno; median of %d alternating rounds:\n", wrkThreads, wrkConnections, wrkDuration, compareRounds)
	fmt.Fprintf(w, "%-15s %11s %9s %9s %14s %13s  %s\n", "target", "requests/s", "p50", "p99", "proxy CPU/req", "dyno CPU/req", "requests/s of each round")
	for _, tg := range targets {
		res := results[tg.name]
		cpu := "-"
		if res.cpuPerReq > 0 {
			cpu = res.cpuPerReq.Round(100 * time.Nanosecond).String()
		}
		var each []string
		for _, r := range runs[tg.name] {
			each = append(each, strconv.FormatFloat(r.rps, 'f', 0, 64))
		}
		fmt.Fprintf(w, "%-15s %11.0f %9s %9s %14s %13s  %s\n", tg.name, res.rps, res.p50.Round(10*time.Microsecond),
			res.p99.Round(10*time.Microsecond), cpu, res.dynoCPUPerReq.Round(100*time.Nanosecond), strings.Join(each, " "))
	}
	fmt.Fprintf(w, "router/direct = %.2f   router/nginx = %.2f   router/nginx-same-job = %.2f   nginx/direct = %.2f   p99 added by the router = %s\n",
		router.rps/direct.rps, router.rps/nginx.rps, router.rps/sameJob.rps, nginx.rps/direct.rps, router.p99-direct.p99)
	fmt.Fprintf(w, "\nwrk -t1 -c1 -d2s --latency (one request at a time): latency added to direct's\n")
	fmt.Fprintf(w, "%-15s %9s %9s %11s %11s\n", "target", "p50", "p99", "added p50", "added p99")
	for _, tg := range targets {
		res := single[tg.name]
		fmt.Fprintf(w, "%-15s %9s %9s %11s %11s\n", tg.name, res.p50.Round(time.Microsecond), res.p99.Round(time.Microsecond),
			(res.p50 - single["direct"].p50).Round(time.Microsecond), (res.p99 - single["direct"].p99).Round(time.Microsecond))
	}
	_ = w.Flush()
	b.Log(table.String())
	b.ReportMetric(direct.rps, "direct-req/s")
	b.ReportMetric(router.rps, "router-req/s")
	b.ReportMetric(nginx.rps, "nginx-req/s")
	b.ReportMetric(sameJob.rps, "nginx-same-job-req/s")
	b.ReportMetric(router.rps/direct.rps, "router/direct")
	b.ReportMetric(router.rps/nginx.rps, "router/nginx")
	b.ReportMetric(router.rps/sameJob.rps, "router/nginx-same-job")
	b.ReportMetric(float64((router.p99 - direct.p99).Microseconds()), "router-added-p99-us")
	b.ReportMetric(float64((single["router"].p99 - single["direct"].p99).Microseconds()), "router-added-p99-1conn-us")
}

// medianResult is the median of each figure over the rounds, figure by figure.
func medianResult(rs []wrkResult) wrkResult {
	med := func(get func(wrkResult) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = get(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	dur := func(get func(wrkResult) time.Duration) time.Duration {
		return time.Duration(med(func(r wrkResult) float64 { return float64(get(r)) }))
	}
	return wrkResult{
		rps:           med(func(r wrkResult) float64 { return r.rps }),
		p50:           dur(func(r wrkResult) time.Duration { return r.p50 }),
		p99:           dur(func(r wrkResult) time.Duration { return r.p99 }),
		cpuPerReq:     dur(func(r wrkResult) time.Duration { return r.cpuPerReq }),
		dynoCPUPerReq: dur(func(r wrkResult) time.Duration { return r.dynoCPUPerReq }),
	}
}
