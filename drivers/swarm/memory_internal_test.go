package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// TestSampleMACMatchesTheBootScript: the MAC the boot script computes with busybox
// (the stack's shell tools) is the one validSample accepts, and only for its values.
func TestSampleMACMatchesTheBootScript(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (the stack's tools) not found: %v", err)
	}
	const nonce = "00112233445566778899aabbccddeeff"
	out, err := exec.Command(busybox, "sh", "-c",
		`mf_nonce=`+nonce+`; mf_seq=3; mf_used=25165824; printf '%s %s %s' "$mf_nonce" "$mf_seq" "$mf_used" | sha256sum | cut -c1-32`).Output()
	if err != nil {
		t.Fatal(err)
	}
	mac := strings.TrimSpace(string(out))
	for _, tc := range []struct {
		nonce string
		seq   int
		used  int64
		want  bool
	}{
		{nonce, 3, 25165824, true},
		{nonce, 4, 25165824, false},
		{nonce, 3, 25165825, false},
		{"ffeeddccbbaa99887766554433221100", 3, 25165824, false},
		{"", 3, 25165824, false},
	} {
		if got := validSample(tc.nonce, tc.seq, tc.used, mac); got != tc.want {
			t.Errorf("validSample(%q, %d, %d, %s) = %v, want %v", tc.nonce, tc.seq, tc.used, mac, got, tc.want)
		}
	}
	if !strings.Contains(memorySampler, `printf '%s %s %s' "$mf_nonce" "$mf_seq" "$mf_used" | sha256sum | cut -c1-32`) {
		t.Error("the boot script no longer computes the MAC as this test does")
	}
}

// TestSamplesDoNotHoldTheLogStream: the log follower publishes a task's next line
// while the first sample's nonce is still being read through the manager (here an
// HTTP server on 127.0.0.1 that answers only once that line was published); the
// sample is checked when the nonce comes, taken or published as the app's line. A
// nonce from the stream's line 1 needs no lookup.
func TestSamplesDoNotHoldTheLogStream(t *testing.T) {
	const nonce = "00112233445566778899aabbccddeeff"
	const used = 25165824
	for _, tc := range []struct {
		name       string
		nonce      string // the MAC's; a forged sample has another
		fromStream bool   // the stream's line 1 told the nonce
		want       []string
		wantAsked  int32
	}{
		{name: "a genuine sample, taken once the nonce comes", nonce: nonce, wantAsked: 1,
			want: []string{"app: hello", "heroku: Process running mem=24M(150.0%)", "heroku: " + supervisor.MsgR14}},
		{name: "a forged sample, published as the app's once the nonce comes", nonce: "ffeeddccbbaa99887766554433221100", wantAsked: 1,
			want: []string{"app: hello", "app: " + markerPrefix + " mem t1 1 25165824 " + sampleMAC("ffeeddccbbaa99887766554433221100", 1, used)}},
		{name: "the stream's line 1 told the nonce: no lookup", nonce: nonce, fromStream: true, wantAsked: 0,
			want: []string{"heroku: Process running mem=24M(150.0%)", "heroku: " + supervisor.MsgR14, "app: hello"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{hello: make(chan struct{})}
			var asked atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasSuffix(r.URL.Path, "/tasks/t1/logs") {
					http.NotFound(w, r)
					return
				}
				asked.Add(1)
				select {
				case <-rec.hello:
				case <-r.Context().Done():
					return
				}
				w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
				_, _ = io.WriteString(stdcopy.NewStdWriter(w, stdcopy.Stdout), "mf#1 "+markerPrefix+" nonce "+nonce+"\n")
			}))
			defer srv.Close()
			d := markerDriver(t, srv.Listener.Addr().String(), rec)
			app := func(text string) logs.Line {
				return logs.Line{App: "hog", Env: "test", Source: logs.SourceApp, Dyno: "web.1", Text: text}
			}
			if tc.fromStream {
				d.learnNonce("t1", markerPrefix+" nonce "+nonce)
			}
			// As the follower does: one line after the other.
			d.opts.Logs.Publish(app(markerPrefix + " mem t1 1 25165824 " + sampleMAC(tc.nonce, 1, used)))
			d.opts.Logs.Publish(app("hello"))
			err := d.poll(context.Background(), 30*time.Second, func(context.Context) (bool, error) {
				return len(rec.texts()) >= len(tc.want), nil
			})
			if got := rec.texts(); err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("published %q (%v), want %q", got, err, tc.want)
			}
			if got := asked.Load(); got != tc.wantAsked {
				t.Errorf("the manager was asked for the task's log %d times, want %d", got, tc.wantAsked)
			}
		})
	}
}

func sampleMAC(nonce string, seq int, used int64) string {
	sum := sha256.Sum256([]byte(nonce + " " + strconv.Itoa(seq) + " " + strconv.FormatInt(used, 10)))
	return hex.EncodeToString(sum[:])[:32]
}

// markerDriver is a driver of the one task t1 (web.1 of hog, a 16 MiB quota) whose
// manager is the engine API at addr.
func markerDriver(t *testing.T, addr string, rec *recorder) *Driver {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.WithHost("tcp://" + addr))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Driver{
		cli: cli, log: slog.New(slog.DiscardHandler), ctx: ctx, cancel: cancel,
		events: supervisor.NewQueue(nil), appLogs: rec, nonces: map[string]taskNonce{}, last: map[string]drivers.Dyno{},
		taskNames: map[string]taskName{"t1": {
			spec: drivers.DynoSpec{App: "hog", Env: "test", Type: "web", Index: 1, MemoryBytes: 16 << 20},
			name: "web.1", dyno: "svc/v1/1",
		}},
	}
	d.opts.Logs = markerSink{next: rec, d: d}
	t.Cleanup(func() {
		d.mu.Lock()
		d.closed = true
		d.mu.Unlock()
		cancel()
		d.wg.Wait() // the nonce lookups
		_ = cli.Close()
	})
	return d
}

// recorder keeps the lines published, and tells when the app's "hello" came.
type recorder struct {
	mu    sync.Mutex
	lines []logs.Line
	hello chan struct{}
}

func (r *recorder) Publish(l logs.Line) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, l)
	if l.Source == logs.SourceApp && l.Text == "hello" {
		close(r.hello)
	}
}

func (r *recorder) texts() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		out = append(out, string(l.Source)+": "+l.Text)
	}
	return out
}

// TestNonceFromTheStreamsLineOne: the follower takes a task's nonce from the
// stream when the first line it got of the task is numbered 1, and asks the manager
// for the head of the task's log otherwise (a stream that began later; unnumbered
// lines, where an app's "mf#1 …" line is no proof).
func TestNonceFromTheStreamsLineOne(t *testing.T) {
	const nonce = "00112233445566778899aabbccddeeff"
	const forged = "ffeeddccbbaa99887766554433221100"
	line := func(seconds int, text string) string {
		return fmt.Sprintf("2026-12-01T18:00:%02d.000000000Z com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t1 %s\n", seconds, text)
	}
	sample := func(stamp, nonce string) string {
		return stamp + markerPrefix + " mem t1 1 25165824 " + sampleMAC(nonce, 1, 25165824)
	}
	r14 := []string{"heroku: Process running mem=24M(150.0%)", "heroku: " + supervisor.MsgR14}
	for _, tc := range []struct {
		name      string
		stream    []string
		want      []string
		wantAsked int32
	}{
		{"line 1 in the stream: no lookup", []string{line(1, "mf#1 "+markerPrefix+" nonce "+nonce), line(2, sample("mf#2 ", nonce))}, r14, 0},
		{"the stream began after line 1: a lookup", []string{line(2, sample("mf#5 ", nonce))}, r14, 1},
		{"unnumbered: the app's own line 1 is no nonce", []string{line(1, markerPrefix+" nonce "+nonce), line(2, "mf#1 "+markerPrefix+" nonce "+forged), line(3, sample("", forged))},
			[]string{"app: " + sample("", forged)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var asked atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/vnd.docker.multiplexed-stream")
				switch {
				case strings.HasSuffix(r.URL.Path, "/services/s1/logs"):
					_, _ = io.WriteString(stdcopy.NewStdWriter(w, stdcopy.Stdout), strings.Join(tc.stream, ""))
				case strings.HasSuffix(r.URL.Path, "/tasks/t1/logs"):
					asked.Add(1)
					_, _ = io.WriteString(stdcopy.NewStdWriter(w, stdcopy.Stdout), "mf#1 "+markerPrefix+" nonce "+nonce+"\n")
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			rec := &recorder{hello: make(chan struct{})}
			d := markerDriver(t, srv.Listener.Addr().String(), rec)
			cur := newLogCursor(time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC))
			if err := d.streamLogs(context.Background(), "s1", cur, newLiveness()); err != nil {
				t.Fatalf("stream: %v", err)
			}
			err := d.poll(context.Background(), 30*time.Second, func(context.Context) (bool, error) {
				return len(rec.texts()) >= len(tc.want), nil
			})
			if got := rec.texts(); err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("published %q (%v), want %q", got, err, tc.want)
			}
			if got := asked.Load(); got != tc.wantAsked {
				t.Errorf("the manager was asked for the task's log %d times, want %d", got, tc.wantAsked)
			}
		})
	}
}
