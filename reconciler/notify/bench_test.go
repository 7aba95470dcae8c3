package notify_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/spec"
)

// BenchmarkDeliveryLatency measures the time from Notify to the receiver's handler
// (an HTTP server on 127.0.0.1): the fsynced queue write, the wake-up of the
// receiver's goroutine, the signed POST. "idle" sends one event at a time; "burst"
// sends 100 at once, so later ones wait behind earlier ones (order per receiver).
// p50 and p99 are reported in milliseconds.
//
//	go test -run '^$' -bench DeliveryLatency -benchtime 2000x ./reconciler/notify
func BenchmarkDeliveryLatency(b *testing.B) {
	for _, bc := range []struct {
		name  string
		burst int
	}{{"idle", 1}, {"burst100", 100}} {
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
			secret := writeSecret(b, "bench-key")
			n := start(b, fastOptions(b, nil), platform(spec.Notify{Name: "ops", Type: "webhook", URL: srv.URL, SecretFile: secret, Severity: "info"}))
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
