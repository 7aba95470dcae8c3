// Package dashboard serves manifold's web dashboard from the daemon: every app at a
// glance, an app's formation, releases (with rollback), config names, drains, charts of
// the last hour and a live log tail. Pages are rendered on the server from embedded
// templates; a little plain JavaScript refreshes the live parts. Access takes a token.
package dashboard

import (
	"context"
	"embed"
	"html/template"
	"log/slog"
	"net/http"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/spec"
)

//go:embed assets
var assets embed.FS

// Daemon is what the dashboard shows and acts on (reconciler.Reconciler).
type Daemon interface {
	Status() reconciler.Status
	Apps() []spec.App
	Releases(app, env string) (spec.App, []ledger.Release, error)
	Rollback(ctx context.Context, app, env string, to int, author string) (ledger.Release, error)
	LivePlan(ctx context.Context) (reconciler.LivePlan, error)
}

// Dynos lists every dyno (the driver): one call serves the whole overview.
type Dynos interface {
	List(ctx context.Context) ([]drivers.Dyno, error)
}

// Logs is the logplex: recent lines, live tails and drain counters.
type Logs interface {
	Recent(f logs.Filter, n int) []logs.Line
	Tail(ctx context.Context, f logs.Filter, replay int) <-chan logs.Line
	DrainStats() []logs.DrainStats
}

// History is the daemon's one-minute figures (reconciler/metrics).
type History interface {
	History(app, env string, since time.Time) []metrics.Minute
}

// Scope is what a token may do: read (look), deploy (roll back), run, admin.
type Scope string

// The scopes the dashboard asks for.
const (
	ScopeRead   Scope = "read"
	ScopeDeploy Scope = "deploy"
)

// Principal is who a token belongs to and what it may do.
type Principal struct {
	// Name is the token's name, recorded as the author of what it does.
	Name string
	// Allows tells whether the principal may act with scope on app ("" for the
	// platform as a whole).
	Allows func(scope Scope, app string) bool
}

// Tokens checks a token given at /login.
type Tokens interface {
	Verify(ctx context.Context, token string) (Principal, error)
}

// Options configure the dashboard. Daemon, Dynos, Logs, History and Tokens are
// required.
type Options struct {
	Daemon  Daemon
	Dynos   Dynos
	Logs    Logs
	History History
	Tokens  Tokens
	Logger  *slog.Logger
	// DomainPort is the router's port, appended to app URLs when not 80 (":5000").
	DomainPort string
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Dashboard is the dashboard's HTTP handler.
type Dashboard struct {
	opts     Options
	pages    *template.Template
	sessions *sessions
	mux      *http.ServeMux
}

// New parses the embedded templates.
func New(opts Options) (*Dashboard, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = 12 * time.Hour
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(assets, "assets/*.html")
	if err != nil {
		return nil, err
	}
	d := &Dashboard{opts: opts, pages: pages, sessions: newSessions(opts.Now, opts.SessionTTL)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", d.loginPage)
	mux.HandleFunc("POST /login", d.login)
	mux.HandleFunc("POST /logout", d.logout)
	mux.Handle("GET /assets/", http.FileServerFS(assets))
	mux.Handle("GET /{$}", d.need(ScopeRead, d.overview))
	mux.Handle("GET /overview.part", d.need(ScopeRead, d.overviewPart))
	mux.Handle("GET /pipeline", d.need(ScopeRead, d.pipeline))
	mux.Handle("GET /apps/{env}/{app}", d.need(ScopeRead, d.appPage))
	mux.Handle("GET /apps/{env}/{app}/formation.part", d.need(ScopeRead, d.formationPart))
	mux.Handle("GET /apps/{env}/{app}/charts.part", d.need(ScopeRead, d.chartsPart))
	mux.Handle("GET /apps/{env}/{app}/releases.part", d.need(ScopeRead, d.releasesPart))
	mux.Handle("GET /apps/{env}/{app}/logs", d.need(ScopeRead, d.tail))
	mux.Handle("POST /apps/{env}/{app}/rollback", d.need(ScopeDeploy, d.rollback))
	d.mux = mux
	return d, nil
}

// ServeHTTP refuses cross-site requests that change anything (a page elsewhere posting
// to the dashboard), then serves the routes.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if err := http.NewCrossOriginProtection().Check(r); err != nil {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	d.mux.ServeHTTP(w, r)
}
