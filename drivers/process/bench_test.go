package process

import (
	"context"
	"testing"

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
