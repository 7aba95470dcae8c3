package dashboard

import (
	"fmt"
	"html/template"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/reconciler/metrics"
)

// Chart geometry (SVG user units; the SVG scales to its box).
const (
	chartWidth   = 420
	chartHeight  = 150
	chartPadLeft = 40
	chartPadTop  = 10
	chartMinutes = 60
)

// chart is one server-made SVG chart of the last hour.
type chart struct {
	Title  string
	Legend []legendItem
	SVG    template.HTML
}

type legendItem struct{ Name, Class string }

type series struct {
	name, class string
	value       func(m metrics.Minute) float64
}

// chartsOf draws the app page's charts from the history: response time, throughput by
// status class, memory against the quota, router errors.
func chartsOf(minutes []metrics.Minute, now time.Time) []chart {
	ms := func(f func(metrics.Minute) float64) func(metrics.Minute) float64 {
		return func(m metrics.Minute) float64 { return f(m) * 1000 }
	}
	return []chart{
		drawChart("Response time (ms)", minutes, now, []series{
			{"p50", "s1", ms(func(m metrics.Minute) float64 { return m.P50 })},
			{"p95", "s2", ms(func(m metrics.Minute) float64 { return m.P95 })},
			{"p99", "s3", ms(func(m metrics.Minute) float64 { return m.P99 })},
		}),
		drawChart("Requests per minute", minutes, now, []series{
			{"2xx", "s1", func(m metrics.Minute) float64 { return float64(m.Requests["2xx"]) }},
			{"3xx", "s4", func(m metrics.Minute) float64 { return float64(m.Requests["3xx"]) }},
			{"4xx", "s2", func(m metrics.Minute) float64 { return float64(m.Requests["4xx"]) }},
			{"5xx", "s3", func(m metrics.Minute) float64 { return float64(m.Requests["5xx"]) }},
		}),
		drawChart("Memory (MB)", minutes, now, []series{
			{"largest dyno", "s1", func(m metrics.Minute) float64 { return float64(m.MemoryBytes >> 20) }},
			{"quota", "s3", func(m metrics.Minute) float64 { return float64(m.MemoryLimitBytes >> 20) }},
		}),
		drawChart("Router errors per minute", minutes, now, []series{
			{"H errors", "s3", func(m metrics.Minute) float64 {
				total := uint64(0)
				for _, n := range m.Errors {
					total += n
				}
				return float64(total)
			}},
		}),
	}
}

func drawChart(title string, minutes []metrics.Minute, now time.Time, all []series) chart {
	start := now.UTC().Truncate(time.Minute).Add(-(chartMinutes - 1) * time.Minute)
	top := 0.0
	for _, m := range minutes {
		for _, s := range all {
			top = max(top, s.value(m))
		}
	}
	top = niceCeiling(top)
	plotW, plotH := float64(chartWidth-chartPadLeft-4), float64(chartHeight-chartPadTop-18)
	x := func(t time.Time) float64 {
		return chartPadLeft + plotW*float64(t.Sub(start)/time.Minute)/float64(chartMinutes-1)
	}
	y := func(v float64) float64 { return chartPadTop + plotH*(1-v/top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" role="img" aria-label="%s" class="chart">`, chartWidth, chartHeight, template.HTMLEscapeString(title))
	for i := 0; i <= 2; i++ {
		v := top * float64(i) / 2
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/><text class="axis" x="%d" y="%.1f">%s</text>`,
			chartPadLeft, chartWidth-4, y(v), y(v), chartPadLeft-4, y(v)+4, axisLabel(v))
	}
	fmt.Fprintf(&b, `<text class="axis" x="%d" y="%d">-60m</text><text class="axis" x="%d" y="%d">now</text>`,
		chartPadLeft+30, chartHeight-2, chartWidth-4, chartHeight-2)
	chartLegend := make([]legendItem, 0, len(all))
	for _, s := range all {
		chartLegend = append(chartLegend, legendItem{s.name, s.class})
		var points []string
		for _, m := range minutes {
			if m.Start.Before(start) {
				continue
			}
			points = append(points, fmt.Sprintf("%.1f,%.1f", x(m.Start), y(s.value(m))))
		}
		switch len(points) {
		case 0:
		case 1:
			xy := strings.Split(points[0], ",")
			fmt.Fprintf(&b, `<circle class="%s" cx="%s" cy="%s" r="2.5"/>`, s.class, xy[0], xy[1])
		default:
			fmt.Fprintf(&b, `<polyline class="%s" points="%s"/>`, s.class, strings.Join(points, " "))
		}
	}
	if len(minutes) == 0 {
		fmt.Fprintf(&b, `<text class="empty" x="%d" y="%d">no data yet</text>`, chartWidth/2, chartHeight/2)
	}
	b.WriteString(`</svg>`)
	return chart{Title: title, Legend: chartLegend, SVG: template.HTML(b.String())} //nolint:gosec // built here from numbers and escaped text
}

// niceCeiling rounds up to 1, 2 or 5 times a power of ten, so the axis reads well.
func niceCeiling(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := 1.0
	for p*10 <= v {
		p *= 10
	}
	for p > v*10 {
		p /= 10
	}
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func axisLabel(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2g", v)
}
