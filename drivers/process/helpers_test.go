package process

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

const waitLimit = 15 * time.Second

// pollInterval is how often eventually looks again.
const pollInterval = 5 * time.Millisecond

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

// recorder is a LogSink that keeps every line.
type recorder struct {
	mu    sync.Mutex
	lines []logs.Line
}

func (r *recorder) Publish(line logs.Line) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

func (r *recorder) all() []logs.Line {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.lines)
}

// texts are the lines of one dyno from one source.
func (r *recorder) texts(dyno, source string) []string {
	var out []string
	for _, l := range r.all() {
		if l.Dyno == dyno && l.Source == source {
			out = append(out, l.Text)
		}
	}
	return out
}

// waitLine waits for a line of dyno and source containing substr.
func (r *recorder) waitLine(t *testing.T, dyno, source, substr string) logs.Line {
	t.Helper()
	var found logs.Line
	eventually(t, waitLimit, fmt.Sprintf("a %s line of %s containing %q", source, dyno, substr), func() error {
		for _, l := range r.all() {
			if l.Dyno == dyno && l.Source == source && strings.Contains(l.Text, substr) {
				found = l
				return nil
			}
		}
		return fmt.Errorf("lines:\n%s", r.dump())
	})
	return found
}

func (r *recorder) dump() string {
	var b strings.Builder
	for _, l := range r.all() {
		b.WriteString(l.Source + "[" + l.Dyno + "]: " + l.Text + "\n")
	}
	return b.String()
}

// inOrder asserts that wants appear among texts in this order (others may interleave).
func inOrder(t *testing.T, texts []string, wants ...string) {
	t.Helper()
	i := 0
	for _, text := range texts {
		if i < len(wants) && text == wants[i] {
			i++
		}
	}
	if i < len(wants) {
		t.Fatalf("missing %q (in order %q) among:\n%s", wants[i], wants, strings.Join(texts, "\n"))
	}
}

// makeSlug writes a gzipped tar of /app holding files (path -> content; a path ending
// in / is a directory; files under bin/ are executable) and returns its key and path.
func makeSlug(t testing.TB, files map[string]string) (key, path string) {
	t.Helper()
	var entries []tar.Header
	for name, content := range files {
		hdr := tar.Header{Name: "./app/" + name, Mode: 0o644, Typeflag: tar.TypeReg, Size: int64(len(content))}
		if strings.HasSuffix(name, "/") {
			hdr = tar.Header{Name: "./app/" + name, Mode: 0o755, Typeflag: tar.TypeDir}
		} else if strings.HasPrefix(name, "bin/") {
			hdr.Mode = 0o755
		}
		entries = append(entries, hdr)
	}
	slices.SortFunc(entries, func(a, b tar.Header) int { return strings.Compare(a.Name, b.Name) })
	entries = append([]tar.Header{{Name: "./app/", Mode: 0o755, Typeflag: tar.TypeDir}}, entries...)
	path = filepath.Join(t.TempDir(), "slug.tgz")
	writeTarball(t, path, entries, func(name string) string { return files[strings.TrimPrefix(name, "./app/")] })
	sum, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(sum)
	return hex.EncodeToString(digest[:]), path
}

func writeTarball(t testing.TB, path string, entries []tar.Header, content func(name string) string) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, hdr := range entries {
		if err := tw.WriteHeader(&hdr); err != nil {
			t.Fatal(err)
		}
		if hdr.Typeflag == tar.TypeReg {
			if _, err := io.WriteString(tw, content(hdr.Name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testSlugFiles is the slug most tests run: a script on the slug's bin in PATH.
var testSlugFiles = map[string]string{
	"bin/hello": "#!/bin/sh\necho hello-from-slug-bin\n",
	"Procfile":  "web: exec \"$TESTBIN\"\n",
}

type harness struct {
	t     testing.TB
	opts  Options
	sink  *recorder
	d     *Driver
	key   string
	slug  string
	testb string
}

// newHarness makes a driver over fresh directories and, at cleanup, closes it and
// stops every dyno left in its state directory (through a new driver, so dynos of a
// closed driver go too).
func newHarness(t testing.TB, opts Options) *harness {
	t.Helper()
	root := t.TempDir()
	opts.StateDir = filepath.Join(root, "dynos")
	opts.SlugDir = filepath.Join(root, "slugs")
	if opts.BootTimeout == 0 {
		opts.BootTimeout = waitLimit
	}
	if opts.Cooloff == nil {
		opts.Cooloff = func(n int) time.Duration { return time.Duration(n-1) * 20 * time.Millisecond }
	}
	sink := &recorder{}
	opts.Logs = sink
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, opts: opts, sink: sink, testb: exe}
	h.key, h.slug = makeSlug(t, testSlugFiles)
	h.d = h.newDriver(sink)
	t.Cleanup(func() {
		h.d.Close()
		last, err := New(context.Background(), h.opts)
		if err != nil {
			t.Errorf("cleanup: %v", err)
			return
		}
		defer last.Close()
		dynos, err := last.List(context.Background())
		if err != nil {
			t.Errorf("cleanup: %v", err)
		}
		for _, dyno := range dynos {
			ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
			if err := last.Stop(ctx, dyno.ID); err != nil {
				t.Errorf("cleanup: %v", err)
			}
			cancel()
		}
	})
	return h
}

// newDriver opens another driver on the harness's directories, publishing to sink.
func (h *harness) newDriver(sink *recorder) *Driver {
	h.t.Helper()
	opts := h.opts
	opts.Logs = sink
	d, err := New(context.Background(), opts)
	if err != nil {
		h.t.Fatal(err)
	}
	return d
}

func (h *harness) spec(typ string, index int, command string, config map[string]string) drivers.DynoSpec {
	cfg := map[string]string{"TESTBIN": h.testb}
	for k, v := range config {
		cfg[k] = v
	}
	return drivers.DynoSpec{App: "hello", Env: "staging", Type: typ, Index: index, Release: 1,
		SlugKey: h.key, SlugPath: h.slug, Command: command, Config: cfg, StopTimeout: 5 * time.Second}
}

// webSpec runs the test binary as a web server.
func (h *harness) webSpec(index int, config map[string]string) drivers.DynoSpec {
	cfg := map[string]string{roleEnv: "web"}
	for k, v := range config {
		cfg[k] = v
	}
	return h.spec("web", index, `exec "$TESTBIN"`, cfg)
}

func (h *harness) start(spec drivers.DynoSpec) drivers.Dyno {
	h.t.Helper()
	dyno, err := h.d.Start(context.Background(), spec)
	if err != nil {
		h.t.Fatal(err)
	}
	return dyno
}

// waitState polls List until the dyno is in state (and cond holds, when given).
func waitState(t *testing.T, d *Driver, id string, state drivers.State, cond func(drivers.Dyno) bool) drivers.Dyno {
	t.Helper()
	var found drivers.Dyno
	eventually(t, waitLimit, fmt.Sprintf("dyno %s %s", id, state), func() error {
		dynos, err := d.List(context.Background())
		if err != nil {
			return err
		}
		for _, dyno := range dynos {
			if dyno.ID == id {
				if dyno.State == state && (cond == nil || cond(dyno)) {
					found = dyno
					return nil
				}
				return fmt.Errorf("last seen %+v", dyno)
			}
		}
		return fmt.Errorf("not listed")
	})
	return found
}

// waitEvent reads Events until one matches.
func waitEvent(t *testing.T, d *Driver, match func(drivers.Event) bool) drivers.Event {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case ev, ok := <-d.Events():
			if !ok {
				t.Fatal("events closed")
			}
			if match(ev) {
				return ev
			}
		case <-timeout:
			t.Fatal("no matching event")
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

func pidOf(d *Driver, id string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if dy := d.dynos[id]; dy != nil {
		dy.mu.Lock()
		defer dy.mu.Unlock()
		return dy.pid
	}
	return 0
}

// groupGone waits until no live process of group pgid is left (zombies waiting for
// init to reap them are dead already).
func groupGone(t *testing.T, pgid int) {
	t.Helper()
	eventually(t, waitLimit, fmt.Sprintf("process group %d gone", pgid), func() error {
		if live := liveGroupMembers(pgid); len(live) > 0 {
			return fmt.Errorf("still has processes %v", live)
		}
		return nil
	})
}

func liveGroupMembers(pgid int) []int {
	// Glob fails only on a malformed pattern, and this one is constant.
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var pids []int
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		end := bytes.LastIndexByte(raw, ')')
		fields := strings.Fields(string(raw[end+1:]))
		if len(fields) < 3 || fields[0] == "Z" || fields[0] == "X" || fields[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		pids = append(pids, pid)
	}
	return pids
}
