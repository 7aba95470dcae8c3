package process

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// BenchmarkStartToUp measures a web dyno from Start to up (its process bound $PORT and
// the driver saw it): fork and exec of /bin/sh and of a small Go web server, the
// output file, the state file and the boot probe. The slug is unpacked once, before.
func BenchmarkStartToUp(b *testing.B) {
	b.ReportAllocs()
	h := newHarness(b, Options{})
	ctx := context.Background()
	for b.Loop() {
		dyno, err := h.d.Start(ctx, h.webSpec(1, nil))
		if err != nil {
			b.Fatal(err)
		}
		for ev := range h.d.Events() {
			if ev.Dyno.ID == dyno.ID && ev.To == drivers.StateUp {
				break
			}
			if ev.Dyno.ID == dyno.ID && ev.To == drivers.StateCrashed {
				b.Fatalf("crashed: %s", ev.Dyno.Reason)
			}
		}
		b.StopTimer()
		if err := h.d.Stop(ctx, dyno.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkIdleDynos measures what idle dynos cost the daemon: N worker dynos whose
// process sleeps and prints nothing (with a standard-1x memory quota, so the R14/R15
// sampling runs as for real dynos), all up; then the driver's CPU time over
// idleWindow (utime+stime of /proc/self/stat, per cent of one core) and its OS
// threads. Run it with -benchtime=1x: one iteration is one window.
func BenchmarkIdleDynos(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("dynos=%d", n), func(b *testing.B) { benchDynos(b, n, "exec sleep 100000", nil) })
	}
}

// BenchmarkChattyDynos is BenchmarkIdleDynos for dynos that each write a line every
// 1 ms or 10 ms (a busy app's request log): what following output costs per line.
func BenchmarkChattyDynos(b *testing.B) {
	for _, every := range []time.Duration{time.Millisecond, 10 * time.Millisecond} {
		b.Run(fmt.Sprintf("dynos=10/every=%s", every), func(b *testing.B) {
			benchDynos(b, 10, `exec "$TESTBIN"`, map[string]string{roleEnv: "chatty", "LINE_EVERY": every.String()})
		})
	}
}

// idleWindow is how long the CPU time of idle dynos is measured: the kernel counts it
// in clock ticks (10 ms), so a short window would round small figures to zero.
const idleWindow = 5 * time.Second

// benchDynos starts n worker dynos running command (with config) and measures the driver over
// idleWindow once all are up.
func benchDynos(b *testing.B, n int, command string, config map[string]string) {
	h := newHarness(b, Options{})
	ctx := context.Background()
	ids := make(map[string]bool, n)
	for i := range n {
		spec := h.spec("worker", i+1, command, config)
		spec.MemoryBytes = 512 << 20
		dyno, err := h.d.Start(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		ids[dyno.ID] = true
	}
	b.Cleanup(func() { stopAll(b, h.d, ids) })
	up := 0
	timeout := time.After(time.Duration(n)*50*time.Millisecond + waitLimit)
	for up < n {
		select {
		case ev := <-h.d.Events():
			if ids[ev.Dyno.ID] && ev.To == drivers.StateUp {
				up++
			}
			if ids[ev.Dyno.ID] && ev.To == drivers.StateCrashed {
				b.Fatalf("dyno %s crashed: %s", ev.Dyno.ID, ev.Dyno.Reason)
			}
		case <-timeout:
			b.Fatalf("%d of %d dynos up", up, n)
		}
	}
	// Measure once the starts' own work is done: every dyno's state file saved as up
	// and its memory watcher sampling (its first sample taken).
	eventually(b, waitLimit, "every dyno saved as up and sampled", func() error {
		for id := range ids {
			raw, err := os.ReadFile(filepath.Join(h.opts.StateDir, id+".json"))
			if err != nil {
				return err
			}
			var st stateFile
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("state file of %s: %w", id, err)
			}
			if st.State != drivers.StateUp {
				return fmt.Errorf("state file of %s says %s", id, st.State)
			}
			h.d.mu.Lock()
			dy := h.d.dynos[id]
			h.d.mu.Unlock()
			if dy == nil || dy.memSamples.Load() < 1 {
				return fmt.Errorf("dyno %s not sampled yet", id)
			}
		}
		return nil
	})
	var cpu, linesPerSecond float64
	for b.Loop() {
		before, linesBefore, t0 := cpuTicks(b), len(h.sink.all()), time.Now()
		time.Sleep(idleWindow)
		after, linesAfter, wall := cpuTicks(b), len(h.sink.all()), time.Since(t0)
		cpu = float64(after-before) / clockTicksPerSecond / wall.Seconds() * 100
		linesPerSecond = float64(linesAfter-linesBefore) / wall.Seconds()
	}
	b.ReportMetric(cpu, "%core")
	b.ReportMetric(cpu/float64(n), "%core/dyno")
	b.ReportMetric(float64(osThreads(b)), "threads")
	if linesPerSecond > 0 {
		b.ReportMetric(linesPerSecond, "lines/s")
		b.ReportMetric(cpu/linesPerSecond*1000, "%core/(1000lines/s)")
	}
}

// clockTicksPerSecond is USER_HZ, the unit of /proc/<pid>/stat times: 100 on Linux.
const clockTicksPerSecond = 100

// cpuTicks is this process's utime+stime (fields 14 and 15 of /proc/self/stat).
func cpuTicks(b *testing.B) int64 {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		b.Fatal(err)
	}
	fields := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	// fields[0] is field 3; utime (14) is fields[11], stime (15) fields[12].
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/self/stat: %q", raw)
	}
	return utime + stime
}

// osThreads is the Threads line of /proc/self/status.
func osThreads(b *testing.B) int {
	b.Helper()
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(raw)) {
		if value, ok := strings.CutPrefix(line, "Threads:"); ok {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("/proc/self/status: no Threads line")
	return 0
}

// stopAll stops the dynos 64 at a time, so a thousand of them go in seconds.
func stopAll(b *testing.B, d *Driver, ids map[string]bool) {
	var wg sync.WaitGroup
	slots := make(chan struct{}, 64)
	for id := range ids {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			defer cancel()
			if err := d.Stop(ctx, id); err != nil {
				b.Errorf("stop %s: %v", id, err)
			}
		})
	}
	wg.Wait()
}
