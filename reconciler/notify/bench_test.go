package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// BenchmarkDeliveryLatency measures the time from Notify to the receiver's handler
// (an HTTP server on 127.0.0.1): the fsynced queue write, the wake-up of the
// receiver's goroutine, the signed POST. "idle" sends one event at a time; "burst"
// sends 100 at once, so later ones wait behind earlier ones (order per receiver).
// p50 and p99 are reported in milliseconds. The key is a file on the host, or
// ("sealed") sealed in the repo and opened with age at each send.
//
//	go test -run '^$' -bench DeliveryLatency -benchtime 2000x ./reconciler/notify
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, bc := range []struct {
		name   string
		burst  int
		sealed bool
	}{{"idle", 1, false}, {"burst100", 100, false}, {"sealed/idle", 1, true}, {"sealed/burst100", 100, true}} {
		b.Run(bc.name, func(b *testing.B) {
			arrived := make(chan time.Duration, 1024)
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				at := time.Now()
				var e notify.Event
				body, _ := io.ReadAll(r.Body)
				_ = json.Unmarshal(body, &e)
				w.WriteHeader(http.StatusNoContent)
				arrived <- at.Sub(e.Time)
			}))
			defer srv.Close()
			opts := fastOptions(b, nil)
			ops := spec.Notify{Name: "ops", Type: "webhook", URL: srv.URL, SecretFile: writeSecret(b, "bench-key"), Severity: "info"}
			if bc.sealed {
				file, recipient, err := secret.Generate()
				if err != nil {
					b.Fatal(err)
				}
				if opts.Secrets, err = secret.ParseKeyring(strings.NewReader(file)); err != nil {
					b.Fatal(err)
				}
				sealed, err := secret.Seal(secret.NotifyBinding("", "", "ops", "secret"), "bench-key", []string{recipient})
				if err != nil {
					b.Fatal(err)
				}
				ops.SecretFile, ops.Secret = "", &spec.Secret{Sealed: sealed, Pos: spec.Pos{File: "manifold.hcl", Line: 1, Col: 1}}
			}
			n := start(b, opts, platform(ops))
			ctx := context.Background()
			var latencies []time.Duration
			b.ReportAllocs()
			b.ResetTimer()
			for sent := 0; sent < b.N; {
				batch := min(bc.burst, b.N-sent)
				for i := range batch {
					e := notify.DeploySucceededEvent("hello", "staging", "", sent+i+1)
					e.Time = time.Now()
					n.Notify(ctx, e)
				}
				for range batch {
					latencies = append(latencies, <-arrived)
				}
				sent += batch
			}
			b.StopTimer()
			slices.Sort(latencies)
			ms := func(q float64) float64 {
				return float64(latencies[int(q*float64(len(latencies)-1))]) / float64(time.Millisecond)
			}
			b.ReportMetric(ms(0.50), "p50-ms")
			b.ReportMetric(ms(0.99), "p99-ms")
		})
	}
}

// BenchmarkRouterLineWatched measures what the notifier's watch of the log stream
// (for router.errors and drain.dropping) adds to each router line the logplex takes:
// "alone" publishes router lines with no tail, "watched" with a running Notifier
// reading them all. The difference is the per-request cost of the watch.
//
//	go test -run '^$' -bench RouterLineWatched -count 5 ./reconciler/notify
func BenchmarkRouterLineWatched(b *testing.B) {
	line := logs.Line{App: "hello", Env: "staging", Source: logs.SourceHeroku, Dyno: "router",
		Text: `at=info method=GET path="/" host=hello.staging.localhost request_id=0f2c fwd="127.0.0.1" dyno=web.1 connect=0ms service=1ms status=200 bytes=2 protocol=http`}
	for _, watched := range []bool{false, true} {
		name := "alone"
		if watched {
			name = "watched"
		}
		b.Run(name, func(b *testing.B) {
			plex := logs.New(logs.Options{})
			defer plex.Close()
			if watched {
				rcv := newReceiver(b)
				opts := fastOptions(b, nil)
				opts.Logs = plex
				start(b, opts, platform(spec.Notify{Name: "ops", Type: "webhook", URL: rcv.srv.URL, Severity: "info"}))
				// The watch is live once an L10 line has made an event.
				waitFor(b, "the watch", func() bool {
					plex.Publish(logs.Line{App: "probe", Env: "x", Source: logs.SourceHeroku, Dyno: "logplex",
						Text: "Error L10 (output buffer overflow): 1 messages dropped since 2026-01-01T00:00:00+00:00."})
					return len(rcv.deliveries()) > 0
				})
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				plex.Publish(line)
			}
		})
	}
}
