package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// scrapeTimeout bounds the driver's List during a scrape, so that a slow engine
// makes a scrape miss the dyno figures rather than hang.
const scrapeTimeout = 5 * time.Second

var (
	dynosDesc = prometheus.NewDesc("manifold_dynos", "Dynos by state (starting, up, crashed).",
		[]string{"app", "env", "process", "state"}, nil)
	memoryDesc = prometheus.NewDesc("manifold_dyno_memory_bytes", "A dyno's resident memory at the dyno manager's last sample.",
		[]string{"app", "env", "dyno"}, nil)
	memoryLimitDesc = prometheus.NewDesc("manifold_dyno_memory_limit_bytes", "A dyno's memory quota (its size).",
		[]string{"app", "env", "dyno"}, nil)
	drainLinesDesc = prometheus.NewDesc("manifold_drain_lines_total", "Lines a log drain delivered.",
		[]string{"app", "env", "drain"}, nil)
	drainDroppedDesc = prometheus.NewDesc("manifold_drain_dropped_lines_total",
		"Lines a log drain dropped (buffer overflow, reported as L10, or rejected by the receiver).",
		[]string{"app", "env", "drain"}, nil)
)

// scrape reads what the driver and the logplex know at each scrape: dynos by state,
// their memory, and the drains' counters.
type scrape struct{ m *Metrics }

func (s *scrape) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dynosDesc, memoryDesc, memoryLimitDesc, drainLinesDesc, drainDroppedDesc} {
		ch <- d
	}
}

func (s *scrape) Collect(ch chan<- prometheus.Metric) {
	if dynos := s.m.opts.Dynos; dynos != nil {
		ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
		list, err := dynos.List(ctx)
		cancel()
		if err != nil {
			s.m.opts.Logger.Warn("metrics: list dynos", "err", err)
		}
		type typeState struct{ app, env, process, state string }
		counts := map[typeState]int{}
		for _, d := range list {
			counts[typeState{d.Spec.App, d.Spec.Env, d.Spec.Type, string(d.State)}]++
			if d.Spec.Type == "run" || d.Spec.Type == "release" {
				continue // one-offs come and go: their names would grow the label set
			}
			if d.MemoryBytes > 0 {
				ch <- prometheus.MustNewConstMetric(memoryDesc, prometheus.GaugeValue, float64(d.MemoryBytes), d.Spec.App, d.Spec.Env, d.Name)
			}
			if d.Spec.MemoryBytes > 0 {
				ch <- prometheus.MustNewConstMetric(memoryLimitDesc, prometheus.GaugeValue, float64(d.Spec.MemoryBytes), d.Spec.App, d.Spec.Env, d.Name)
			}
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(dynosDesc, prometheus.GaugeValue, float64(n), k.app, k.env, k.process, k.state)
		}
	}
	if drains := s.m.opts.Drains; drains != nil {
		for _, st := range drains.DrainStats() {
			ch <- prometheus.MustNewConstMetric(drainLinesDesc, prometheus.CounterValue, float64(st.Sent), st.App, st.Env, st.Name)
			ch <- prometheus.MustNewConstMetric(drainDroppedDesc, prometheus.CounterValue, float64(st.Dropped), st.App, st.Env, st.Name)
		}
	}
}
