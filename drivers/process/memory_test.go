package process

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

const mib = 1 << 20

// The test binary alone holds about 8 MiB resident, 25 MiB under -race: the quotas
// and hogs below keep clear of both (hog 44 MiB under a 40 MiB quota is 130-175%,
// 60 MiB more is past 200% either way).
const (
	hogQuota   = 40 * mib
	hogFirstMB = 44
	hogMoreMB  = 60
)

// memOptions samples fast; R14 is reported once per process run (the hour never ends
// within a test), which makes the number of R14 lines exact.
func memOptions() Options {
	return Options{MemoryInterval: 50 * time.Millisecond, MemoryReportInterval: time.Hour}
}

// hogSpec is a worker that takes firstMB MiB, and moreMB more when hogMore tells it.
func (h *harness) hogSpec(index int, quota int64, firstMB, moreMB int) drivers.DynoSpec {
	spec := h.spec("worker", index, `exec "$TESTBIN"`, map[string]string{
		roleEnv: "hog", "HOG_MB": strconv.Itoa(firstMB), "HOG_MORE_MB": strconv.Itoa(moreMB),
	})
	spec.MemoryBytes = quota
	return spec
}

// hogMore tells the hog process pid (which printed "hog holds" already, so it
// catches the signal) to take its HOG_MORE_MB. A process restarted later is not told.
func hogMore(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		t.Fatalf("tell hog %d to take more: %v", pid, err)
	}
}

func dynoOf(t *testing.T, d *Driver, id string) *dyno {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	dy := d.dynos[id]
	if dy == nil {
		t.Fatalf("no dyno %s", id)
	}
	return dy
}

// waitSamples waits until the memory watcher of dyno id has taken n samples.
func waitSamples(t *testing.T, d *Driver, id string, n int64) {
	t.Helper()
	dy := dynoOf(t, d, id)
	eventually(t, waitLimit, fmt.Sprintf("dyno %s: %d memory samples", id, n), func() error {
		if got := dy.memSamples.Load(); got < n {
			return fmt.Errorf("%d samples so far", got)
		}
		return nil
	})
}

func countPrefix(texts []string, prefix string) int {
	n := 0
	for _, text := range texts {
		if strings.HasPrefix(text, prefix) {
			n++
		}
	}
	return n
}

// checkMemLine asserts text is Heroku's sample line with a per cent within [lo, hi].
func checkMemLine(t *testing.T, text string, lo, hi float64) {
	t.Helper()
	var mem int
	var pct float64
	if _, err := fmt.Sscanf(text, "Process running mem=%dM(%f%%)", &mem, &pct); err != nil {
		t.Fatalf("%q: not a memory line: %v", text, err)
	}
	if pct < lo || pct > hi {
		t.Fatalf("%q: %.1f%% not within %.0f-%.0f%%", text, pct, lo, hi)
	}
}

func TestMemoryR14ThenR15(t *testing.T) {
	h := newHarness(t, memOptions())
	dyno := h.start(h.hogSpec(1, hogQuota, hogFirstMB, hogMoreMB))

	ev := waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.Code == "R14" })
	if ev.From != drivers.StateUp || ev.To != drivers.StateUp {
		t.Errorf("R14 event %s -> %s, want up -> up", ev.From, ev.To)
	}
	h.sink.waitLine(t, "worker.1", logs.SourceHeroku, supervisor.MsgR14)
	// Many samples over quota, one report per MemoryReportInterval.
	waitSamples(t, h.d, dyno.ID, 10)
	texts := h.sink.texts("worker.1", logs.SourceHeroku)
	if n := countPrefix(texts, supervisor.MsgR14); n != 1 {
		t.Fatalf("%d R14 lines within one report interval, want 1:\n%s", n, strings.Join(texts, "\n"))
	}
	i := indexOf(texts, supervisor.MsgR14)
	// The first sample over the quota may come while the hog still allocates, just
	// past 100% (100.1% seen in CI): over the quota is all R14 says.
	checkMemLine(t, texts[i-1], 100, 199)
	pid := pidOf(h.d, dyno.ID)

	// Past 200%: R15, the group killed, crashed, restarted.
	hogMore(t, pid)
	ev = waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.To == drivers.StateCrashed })
	if ev.Code != "R15" || ev.Dyno.Reason != supervisor.MsgR15 {
		t.Errorf("crash event code %q reason %q, want R15 %q", ev.Code, ev.Dyno.Reason, supervisor.MsgR15)
	}
	groupGone(t, pid)
	// The restart follows the crash event (the cool-off is 0): wait for it, it races the event's reader.
	h.sink.waitLine(t, "worker.1", logs.SourceHeroku, "State changed from crashed to starting")
	texts = h.sink.texts("worker.1", logs.SourceHeroku)
	i = indexOf(texts, supervisor.MsgR15)
	if i < 1 {
		t.Fatalf("no R15 line after a sample line:\n%s", strings.Join(texts, "\n"))
	}
	checkMemLine(t, texts[i-1], 200.1, 1000)
	inOrder(t, texts[i:], supervisor.MsgR15, "Stopping process with SIGKILL", "Process exited with status 137",
		"State changed from up to crashed", "State changed from crashed to starting")

	// The new process holds its first 44 MiB only (nobody tells it to take more): over quota
	// again, reported again (a new process), not killed.
	up := waitState(t, h.d, dyno.ID, drivers.StateUp, func(d drivers.Dyno) bool { return d.Restarts == 1 })
	if up.Reason != "" {
		t.Errorf("restarted dyno reason %q", up.Reason)
	}
	eventually(t, waitLimit, "an R14 after the restart", func() error {
		if countPrefix(h.sink.texts("worker.1", logs.SourceHeroku), supervisor.MsgR14) < 2 {
			return fmt.Errorf("one R14 line so far:\n%s", h.sink.dump())
		}
		return nil
	})
	if n := countPrefix(h.sink.texts("worker.1", logs.SourceHeroku), supervisor.MsgR15); n != 1 {
		t.Errorf("%d R15 lines, want 1", n)
	}
}

func TestMemoryUnderQuota(t *testing.T) {
	h := newHarness(t, memOptions())
	under := h.start(h.hogSpec(1, 64*mib, 0, 0))
	unlimited := h.start(h.hogSpec(2, 0, hogFirstMB, 0))
	h.sink.waitLine(t, "worker.1", logs.SourceApp, "hog holds")
	h.sink.waitLine(t, "worker.2", logs.SourceApp, "hog holds")
	waitSamples(t, h.d, under.ID, 5)

	if used := dynoOf(t, h.d, under.ID).memUsage.Load(); used < mib || used > 64*mib {
		t.Errorf("dyno under quota measured at %d bytes, want 1 MiB to 64 MiB", used)
	}
	if n := dynoOf(t, h.d, unlimited.ID).memSamples.Load(); n != 0 {
		t.Errorf("dyno without a quota sampled %d times", n)
	}
	for _, name := range []string{"worker.1", "worker.2"} {
		for _, text := range h.sink.texts(name, logs.SourceHeroku) {
			if strings.Contains(text, "R14") || strings.Contains(text, "R15") || strings.HasPrefix(text, "Process running") {
				t.Errorf("%s: %q", name, text)
			}
		}
	}
	for _, id := range []string{under.ID, unlimited.ID} {
		if dyno := waitState(t, h.d, id, drivers.StateUp, nil); dyno.Restarts != 0 {
			t.Errorf("%s restarted %d times", dyno.Name, dyno.Restarts)
		}
	}
}

func TestMemoryAdoptedDynoWatched(t *testing.T) {
	h := newHarness(t, memOptions())
	dyno := h.start(h.hogSpec(1, hogQuota, hogFirstMB, hogMoreMB))
	h.sink.waitLine(t, "worker.1", logs.SourceHeroku, supervisor.MsgR14)
	pid := pidOf(h.d, dyno.ID)
	if err := h.d.Close(); err != nil {
		t.Fatal(err)
	}

	sink := &recorder{}
	h.d = h.newDriver(sink)
	if got := pidOf(h.d, dyno.ID); got != pid {
		t.Fatalf("adopted pid %d, want %d", got, pid)
	}
	sink.waitLine(t, "worker.1", logs.SourceHeroku, supervisor.MsgR14)
	hogMore(t, pid)
	ev := waitEvent(t, h.d, func(ev drivers.Event) bool { return ev.Dyno.ID == dyno.ID && ev.To == drivers.StateCrashed })
	if ev.Code != "R15" || ev.Dyno.Reason != supervisor.MsgR15 {
		t.Errorf("adopted dyno crash: code %q reason %q, want R15", ev.Code, ev.Dyno.Reason)
	}
	groupGone(t, pid)
	// The exit status is known here only because the first driver ran in this process.
	inOrder(t, sink.texts("worker.1", logs.SourceHeroku), supervisor.MsgR15, "Stopping process with SIGKILL", "State changed from up to crashed")
	waitState(t, h.d, dyno.ID, drivers.StateUp, func(d drivers.Dyno) bool { return d.Restarts == 1 })
}

func TestMemoryOptions(t *testing.T) {
	for _, hard := range []float64{0.5, -1} {
		_, err := New(context.Background(), Options{StateDir: t.TempDir(), MemoryHardLimit: hard})
		if err == nil || !strings.Contains(err.Error(), "memory hard limit") {
			t.Errorf("MemoryHardLimit %g: err %v, want a memory hard limit error", hard, err)
		}
	}
	d, err := New(context.Background(), Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.opts.MemoryInterval != DefaultMemoryInterval || d.opts.MemoryReportInterval != DefaultMemoryReportInterval || d.opts.MemoryHardLimit != DefaultMemoryHardLimit {
		t.Errorf("defaults %v %v %v", d.opts.MemoryInterval, d.opts.MemoryReportInterval, d.opts.MemoryHardLimit)
	}
}

func TestParseStatMemory(t *testing.T) {
	// Fields 6 to 25 after "pid (comm) state ppid pgrp"; field 24 (rss) is 2048.
	var tail string
	for field := 6; field <= 25; field++ {
		tail += " " + strconv.Itoa(field)
	}
	tail = strings.Replace(tail, " 24 ", " 2048 ", 1)
	for _, tc := range []struct {
		name  string
		stat  string
		pgid  int
		pages int64
		ok    bool
	}{
		{"plain", "123 (sh) S 1 777" + tail, 777, 2048, true},
		{"name with ) and spaces", "123 (a) b (c) S 1 42" + tail, 42, 2048, true},
		{"truncated", "123 (sh) S 1 777 4 5", 0, 0, false},
		{"no parenthesis", "garbage", 0, 0, false},
		{"bad pgid", "123 (sh) S 1 x" + tail, 0, 0, false},
		{"negative rss", "123 (sh) S 1 9" + strings.Replace(tail, "2048", "-1", 1), 0, 0, false},
		{"empty", "", 0, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pgid, pages, ok := parseStatMemory([]byte(tc.stat))
			if pgid != tc.pgid || pages != tc.pages || ok != tc.ok {
				t.Errorf("got %d %d %v, want %d %d %v", pgid, pages, ok, tc.pgid, tc.pages, tc.ok)
			}
		})
	}
}

// TestMemScannerOwnGroup measures this test process's own group against /proc.
func TestMemScannerOwnGroup(t *testing.T) {
	s := newMemScanner("/proc", time.Millisecond)
	pgid := syscall.Getpgrp()
	rss, members := s.usage(pgid, 1<<62)
	if members < 1 || rss < mib {
		t.Fatalf("own group %d: %d members, %d bytes", pgid, members, rss)
	}
	// Over a limit of 1 byte the group is measured by PSS: at most RSS, never 0.
	pss, _ := s.usage(pgid, 1)
	if pss <= 0 || pss > rss+64*mib {
		t.Errorf("PSS %d, RSS %d", pss, rss)
	}
	if _, members := s.usage(1<<30, 0); members != 0 {
		t.Errorf("a group that does not exist has %d members", members)
	}
	empty := newMemScanner(filepath.Join(t.TempDir(), "no-proc"), time.Millisecond)
	if used, members := empty.usage(pgid, 0); used != 0 || members != 0 {
		t.Errorf("no /proc: %d bytes, %d members", used, members)
	}
}

func indexOf(texts []string, want string) int {
	for i, text := range texts {
		if text == want {
			return i
		}
	}
	return -1
}

func TestMemoryOneOffR15(t *testing.T) {
	h := newHarness(t, memOptions())
	// No one to tell it to take more: the one-off takes it all at once.
	spec := h.hogSpec(0, hogQuota, hogFirstMB+hogMoreMB, 0)
	spec.Type, spec.Index = "run", 0
	var stdout strings.Builder
	code, err := h.d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdout: &stdout, Stderr: &stdout})
	if code != 137 || !errors.Is(err, ErrMemoryQuota) {
		t.Fatalf("one-off past its hard limit: code %d err %v, want 137 and ErrMemoryQuota; output %q", code, err, stdout.String())
	}
	texts := h.sink.texts("run.1", logs.SourceHeroku)
	inOrder(t, texts, supervisor.MsgR15, "Stopping process with SIGKILL", "Process exited with status 137", "State changed from up to complete")
	if i := indexOf(texts, supervisor.MsgR15); i < 1 {
		t.Fatalf("no sample line before R15:\n%s", strings.Join(texts, "\n"))
	} else {
		checkMemLine(t, texts[i-1], 200.1, 1000)
	}

	// Under its quota, a one-off runs to its end untouched.
	spec.Command = "echo small"
	code, err = h.d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdout: &stdout, Stderr: &stdout})
	if code != 0 || err != nil {
		t.Fatalf("small one-off: code %d err %v", code, err)
	}
}

// BenchmarkMemoryScan is one scan of /proc (pgid and RSS of every process), the cost
// of a memory sample whatever the number of dynos.
func BenchmarkMemoryScan(b *testing.B) {
	s := newMemScanner("/proc", 0)
	pgid := syscall.Getpgrp()
	b.ReportAllocs()
	for b.Loop() {
		s.usage(pgid, 1<<62)
	}
	b.ReportMetric(float64(len(s.groups)), "groups")
}
