// Package metrics counts what the platform does, for Prometheus (`--metrics ADDR`,
// /metrics) and for the daemon's own one-minute history of the last 24 hours
// (`manifold metrics`, GET /v1/apps/{app}/metrics). Label sets stay bounded: app,
// env, process, dyno, status class, error code; never a path, host or request id.
package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

// Dynos lists the dynos of the daemon's driver (drivers.Driver).
type Dynos interface {
	List(ctx context.Context) ([]drivers.Dyno, error)
}

// Drains reports the logplex's drain counters (logs.Plex).
type Drains interface {
	DrainStats() []logs.DrainStats
}

// Options configure Metrics. Dynos and Drains are read at each scrape and each
// memory sample; either may be nil.
type Options struct {
	Dynos  Dynos
	Drains Drains
	Logger *slog.Logger
	// Now is the clock of the history (default time.Now).
	Now func() time.Time
}

// Metrics holds the daemon's Prometheus registry and the per-app history. All methods
// are safe for concurrent use; a nil *Metrics records nothing.
type Metrics struct {
	opts     Options
	registry *prometheus.Registry

	requests        *prometheus.CounterVec
	requestDuration *prometheus.HistogramVec
	routerErrors    *prometheus.CounterVec
	restarts        *prometheus.CounterVec
	releases        *prometheus.CounterVec
	releaseInfo     *prometheus.GaugeVec
	buildDuration   prometheus.Histogram
	passDuration    prometheus.Histogram
	webhooks        *prometheus.CounterVec

	mu      sync.Mutex
	history map[appKey]*history
	apps    map[appKey]*App
	// info is the release each app runs, so that manifold_release_info holds one
	// series per app (the old version's is deleted).
	info map[appKey][2]string
}

type appKey struct{ app, env string }

// New registers every metric. Collect the Go runtime's and the process's own too, as
// Flux's and Argo CD's controllers do.
func New(opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{
		opts:     opts,
		registry: prometheus.NewRegistry(),
		history:  map[appKey]*history{},
		apps:     map[appKey]*App{},
		info:     map[appKey][2]string{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_router_requests_total", Help: "Requests the router answered, by app, environment and status class.",
		}, []string{"app", "env", "status_class"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "manifold_router_request_duration_seconds", Help: "Time from a request's arrival to the end of its response.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"app", "env"}),
		routerErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_router_errors_total", Help: "Router errors by Heroku error code (H10, H12, ...).",
		}, []string{"app", "env", "code"}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_dyno_restarts_total", Help: "Dyno crashes the dyno manager restarts, by reason (crash, R14, R15).",
		}, []string{"app", "env", "process", "reason"}),
		releases: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_releases_total", Help: "Releases made, by outcome (succeeded, failed).",
		}, []string{"app", "env", "status"}),
		releaseInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "manifold_release_info", Help: "The release each app runs (value 1).",
		}, []string{"app", "env", "version", "slug"}),
		buildDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "manifold_build_duration_seconds", Help: "Slug builds, from start to end.",
			Buckets: []float64{1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}),
		passDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "manifold_reconcile_duration_seconds", Help: "Reconcile passes, from fetch to the last app converged.",
			Buckets: []float64{0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300},
		}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "manifold_webhook_requests_total", Help: "Webhook calls, by result (accepted, rejected, duplicate, limited).",
		}, []string{"result"}),
	}
	m.registry.MustRegister(m.requests, m.requestDuration, m.routerErrors, m.restarts, m.releases,
		m.releaseInfo, m.buildDuration, m.passDuration, m.webhooks, &scrape{m: m},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{ErrorLog: slogAdapter{m.opts.Logger}})
}

// Registry is the registry behind Handler, for tests.
func (m *Metrics) Registry() *prometheus.Registry { return m.registry }

// Build records a slug build's duration.
func (m *Metrics) Build(took time.Duration) {
	if m != nil {
		m.buildDuration.Observe(took.Seconds())
	}
}

// Pass records a reconcile pass's duration.
func (m *Metrics) Pass(took time.Duration) {
	if m != nil {
		m.passDuration.Observe(took.Seconds())
	}
}

// Release counts a release's outcome ("succeeded", "failed").
func (m *Metrics) Release(app, env string, version int, slug, status string) {
	if m != nil {
		m.releases.WithLabelValues(app, env, status).Inc()
	}
}

// Running records the release an app runs (manifold_release_info): one series per
// app, the previous release's deleted.
func (m *Metrics) Running(app, env string, version int, slug string) {
	if m == nil {
		return
	}
	key := appKey{app, env}
	labels := [2]string{strconv.Itoa(version), slug}
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.info[key]; ok {
		if old == labels {
			return
		}
		m.releaseInfo.DeleteLabelValues(app, env, old[0], old[1])
	}
	m.info[key] = labels
	m.releaseInfo.WithLabelValues(app, env, labels[0], labels[1]).Set(1)
}

// Webhook records a webhook call's result.
func (m *Metrics) Webhook(result string) {
	if m != nil {
		m.webhooks.WithLabelValues(result).Inc()
	}
}

// CountWebhooks wraps the git webhook's handler, counting each call by its answer in
// manifold_webhook_requests_total: accepted (202, a fetch triggered), ignored (200:
// a ping, another event, a repeated delivery), rejected (401, a bad signature),
// limited (429), invalid (any other refusal).
func (m *Metrics) CountWebhooks(next http.Handler) http.Handler {
	if m == nil {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		result := "invalid"
		switch rec.status {
		case http.StatusAccepted:
			result = "accepted"
		case http.StatusOK:
			result = "ignored"
		case http.StatusUnauthorized:
			result = "rejected"
		case http.StatusTooManyRequests:
			result = "limited"
		}
		m.Webhook(result)
	})
}

// statusRecorder remembers the status a handler answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// DynoEvent counts a crash (a dyno going to crashed) as a restart, by reason: the
// event's code (R14, R15, R10) or "crash".
func (m *Metrics) DynoEvent(ev drivers.Event) {
	if m == nil || ev.To != drivers.StateCrashed || ev.From == drivers.StateCrashed {
		return
	}
	reason := ev.Code
	if reason == "" {
		reason = "crash"
	}
	spec := ev.Dyno.Spec
	m.restarts.WithLabelValues(spec.App, spec.Env, spec.Type, reason).Inc()
	m.historyOf(spec.App, spec.Env).restart(m.opts.Now())
}

// History returns an app's one-minute figures from since on, oldest first, the
// minute in progress last.
func (m *Metrics) History(app, env string, since time.Time) []Minute {
	if m == nil {
		return nil
	}
	return m.historyOf(app, env).since(m.opts.Now(), since)
}

func (m *Metrics) historyOf(app, env string) *history {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := appKey{app, env}
	h := m.history[key]
	if h == nil {
		h = newHistory()
		m.history[key] = h
	}
	return h
}

// SampleMemory records every dyno's resident memory in its app's history; the daemon
// calls it once a minute (the dashboard's resolution).
func (m *Metrics) SampleMemory(ctx context.Context) error {
	if m == nil || m.opts.Dynos == nil {
		return nil
	}
	dynos, err := m.opts.Dynos.List(ctx)
	if err != nil {
		return err
	}
	now := m.opts.Now()
	for _, d := range dynos {
		if d.MemoryBytes > 0 {
			m.historyOf(d.Spec.App, d.Spec.Env).memory(now, d.MemoryBytes, d.Spec.MemoryBytes)
		}
	}
	return nil
}

// Run samples memory every minute until ctx ends.
func (m *Metrics) Run(ctx context.Context) {
	ticker := time.NewTicker(time.Minute)
	defer ticker.Stop()
	for {
		if err := m.SampleMemory(ctx); err != nil && ctx.Err() == nil {
			m.opts.Logger.Warn("sample dyno memory", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) { a.log.Error("serve metrics", "err", v) }

// HistoryHandler serves GET /v1/apps/{app}/metrics?env=ENV&since=DURATION: the app's
// one-minute figures of the last hour (or since), oldest first, as JSON. env may be
// left out when the app has figures in one environment only.
func (m *Metrics) HistoryHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app, env := r.PathValue("app"), r.URL.Query().Get("env")
		window := time.Hour
		if s := r.URL.Query().Get("since"); s != "" {
			d, err := time.ParseDuration(s)
			if err != nil || d <= 0 || d > historyMinutes*time.Minute {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "since: want a duration up to 24h, got " + strconv.Quote(s)})
				return
			}
			window = d
		}
		if env == "" {
			envs := m.envsOf(app)
			if len(envs) != 1 {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": "app " + app + " has figures in " + strconv.Itoa(len(envs)) + " environments: name one with env"})
				return
			}
			env = envs[0]
		}
		writeJSON(w, http.StatusOK, AppHistory{App: app, Env: env, Minutes: m.History(app, env, m.opts.Now().Add(-window))})
	})
}

// AppHistory is the answer of GET /v1/apps/{app}/metrics.
type AppHistory struct {
	App     string   `json:"app"`
	Env     string   `json:"env"`
	Minutes []Minute `json:"minutes"`
}

func (m *Metrics) envsOf(app string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var envs []string
	for key := range m.history {
		if key.app == app {
			envs = append(envs, key.env)
		}
	}
	return envs
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
