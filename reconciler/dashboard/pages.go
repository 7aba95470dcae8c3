package dashboard

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

// maxReleasesShown bounds the releases table of an app page (Heroku shows the newest
// releases, with more on request).
const maxReleasesShown = 20

var funcs = template.FuncMap{
	"ago": func(now, t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		d := now.Sub(t)
		switch {
		case d < time.Minute:
			return strconv.Itoa(int(d/time.Second)) + "s ago"
		case d < time.Hour:
			return strconv.Itoa(int(d/time.Minute)) + "m ago"
		case d < 48*time.Hour:
			return strconv.Itoa(int(d/time.Hour)) + "h ago"
		}
		return t.UTC().Format("2006-01-02")
	},
	"short": shortCommit,
	"short12": func(s string) string {
		if len(s) > len("sha256:")+12 {
			return s[:len("sha256:")+12]
		}
		return s
	},
	"mib":   func(b int64) string { return strconv.FormatInt(b>>20, 10) + " MB" },
	"lower": strings.ToLower,
}

// render writes a page; a template error (a bug) is logged and answered 500.
func (d *Dashboard) render(w http.ResponseWriter, name string, data any) {
	var page bytes.Buffer
	if err := d.pages.ExecuteTemplate(&page, name, data); err != nil {
		d.opts.Logger.Error("render dashboard page", "page", name, "err", err)
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write(page.Bytes())
}

// appRow is one app in one environment on the overview.
type appRow struct {
	App, Env  string
	State     string
	Reason    string
	Release   int
	Commit    string
	Formation []typeCount
	URL       string
	Deployed  time.Time
	Pending   []string // what the newest commit would change (the live plan)
}

type typeCount struct {
	Type      string
	Up, Total int
}

type overviewData struct {
	Now      time.Time
	Who      string
	Revision string
	Error    string
	Rows     []appRow
}

func (d *Dashboard) overviewData(r *http.Request) overviewData {
	who := principalOf(r.Context())
	status := d.opts.Daemon.Status()
	out := overviewData{Now: d.opts.Now(), Who: who.Name, Revision: status.Revision.Short(), Error: status.Error}
	dynos, err := d.opts.Dynos.List(r.Context())
	if err != nil {
		out.Error = cmp.Or(out.Error, "list dynos: "+err.Error())
	}
	byApp := map[plan.AppKey][]drivers.Dyno{}
	for _, dy := range dynos {
		key := plan.AppKey{App: dy.Spec.App, Env: dy.Spec.Env}
		byApp[key] = append(byApp[key], dy)
	}
	specs := map[plan.AppKey]spec.App{}
	for _, app := range d.opts.Daemon.Apps() {
		specs[plan.KeyOf(&app)] = app
	}
	pending := map[plan.AppKey][]string{}
	if live, err := d.opts.Daemon.LivePlan(r.Context()); err == nil {
		for _, c := range live.Plan.Changes {
			key := plan.AppKey{App: c.App, Env: c.Env}
			pending[key] = append(pending[key], c.EffectString()+": "+changeSubject(c))
		}
	}
	for _, s := range status.Apps {
		if !who.Allows(ScopeRead, s.App) {
			continue
		}
		key := plan.AppKey{App: s.App, Env: s.Env}
		row := appRow{App: s.App, Env: s.Env, State: s.State, Reason: s.Reason, Release: s.Release,
			Commit: s.Commit, Pending: pending[key]}
		if _, releases, err := d.opts.Daemon.Releases(s.App, s.Env); err == nil {
			for _, rel := range releases {
				if rel.Version == s.Release {
					row.Deployed = rel.CreatedAt // when the release that runs was made
					break
				}
			}
		}
		row.Formation = formationOf(specs[key], byApp[key])
		if app, ok := specs[key]; ok && len(app.Domains) > 0 && answersHTTP(app) {
			row.URL = "http://" + app.Domains[0] + d.opts.DomainPort + "/"
		}
		out.Rows = append(out.Rows, row)
	}
	return out
}

func changeSubject(c plan.Change) string {
	switch {
	case c.Key != "":
		return "config " + c.Key
	case c.Process != "":
		return string(c.Kind) + " " + c.Process
	}
	return string(c.Kind)
}

// formationOf counts dynos up and wanted per process type: the spec's count, and
// one-offs left out.
func formationOf(app spec.App, dynos []drivers.Dyno) []typeCount {
	counts := map[string]*typeCount{}
	for _, p := range app.Processes {
		if p.Count > 0 {
			counts[p.Type] = &typeCount{Type: p.Type, Total: p.Count}
		}
	}
	for _, dy := range dynos {
		if dy.Spec.Type == "run" || dy.Spec.Type == "release" {
			continue
		}
		c := counts[dy.Spec.Type]
		if c == nil {
			c = &typeCount{Type: dy.Spec.Type}
			counts[dy.Spec.Type] = c
		}
		if dy.State == drivers.StateUp {
			c.Up++
		}
	}
	var out []typeCount
	for _, t := range slices.Sorted(maps.Keys(counts)) {
		out = append(out, *counts[t])
	}
	return out
}

func (d *Dashboard) overview(w http.ResponseWriter, r *http.Request) {
	d.render(w, "overview.html", d.overviewData(r))
}

func (d *Dashboard) overviewPart(w http.ResponseWriter, r *http.Request) {
	d.render(w, "overview-rows", d.overviewData(r))
}

// appData is the app page.
type appData struct {
	Now       time.Time
	Who       string
	CanDeploy bool
	App, Env  string
	Status    reconciler.AppStatus
	URL       string
	Domains   []string
	Processes []processView
	Releases  []ledger.Release
	Config    []configVar
	Drains    []logs.DrainStats
	Charts    []chart
	Lines     []logs.Line
	Flash     string
}

type processView struct {
	spec.Process
	Dynos []drivers.Dyno
}

type configVar struct {
	Name  string
	Value string // shown only for names that are not sensitive; secrets never
}

var errNoApp = errors.New("no such app")

func (d *Dashboard) appData(r *http.Request) (appData, error) {
	app, env := r.PathValue("app"), r.PathValue("env")
	who := principalOf(r.Context())
	out := appData{Now: d.opts.Now(), Who: who.Name, CanDeploy: who.Allows(ScopeDeploy, app), App: app, Env: env}
	var desired *spec.App
	for _, a := range d.opts.Daemon.Apps() {
		if a.Name == app && a.Env == env {
			desired = &a
			break
		}
	}
	if desired == nil {
		return out, errNoApp
	}
	for _, s := range d.opts.Daemon.Status().Apps {
		if s.App == app && s.Env == env {
			out.Status = s
		}
	}
	out.Domains = desired.Domains
	if len(desired.Domains) > 0 && answersHTTP(*desired) {
		out.URL = "http://" + desired.Domains[0] + d.opts.DomainPort + "/"
	}
	dynos, err := d.opts.Dynos.List(r.Context())
	if err != nil {
		return out, fmt.Errorf("list dynos: %w", err)
	}
	for _, p := range desired.Processes {
		view := processView{Process: p}
		for _, dy := range dynos {
			if dy.Spec.App == app && dy.Spec.Env == env && dy.Spec.Type == p.Type {
				view.Dynos = append(view.Dynos, dy)
			}
		}
		slices.SortFunc(view.Dynos, func(a, b drivers.Dyno) int { return a.Spec.Index - b.Spec.Index })
		if p.Count > 0 || len(view.Dynos) > 0 {
			out.Processes = append(out.Processes, view)
		}
	}
	_, releases, err := d.opts.Daemon.Releases(app, env)
	if err != nil {
		return out, err
	}
	out.Releases = releases[:min(len(releases), maxReleasesShown)]
	for _, name := range slices.Sorted(maps.Keys(desired.Config)) {
		// Values are masked: a dashboard is looked at over shoulders and shared screens.
		out.Config = append(out.Config, configVar{Name: name, Value: "••••••"})
	}
	for _, st := range d.opts.Logs.DrainStats() {
		if st.App == app && st.Env == env {
			out.Drains = append(out.Drains, st)
		}
	}
	out.Charts = chartsOf(d.opts.History.History(app, env, d.opts.Now().Add(-time.Hour)), d.opts.Now())
	out.Lines = d.opts.Logs.Recent(logs.Filter{App: app, Env: env}, 100)
	return out, nil
}

func (d *Dashboard) appPage(w http.ResponseWriter, r *http.Request) {
	data, err := d.appData(r)
	switch {
	case errors.Is(err, errNoApp):
		http.Error(w, "no app "+r.PathValue("app")+" in "+r.PathValue("env"), http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	data.Flash = r.URL.Query().Get("flash")
	d.render(w, "app.html", data)
}

func (d *Dashboard) part(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := d.appData(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		d.render(w, name, data)
	}
}

func (d *Dashboard) formationPart(w http.ResponseWriter, r *http.Request) { d.part("formation")(w, r) }
func (d *Dashboard) chartsPart(w http.ResponseWriter, r *http.Request)    { d.part("charts")(w, r) }
func (d *Dashboard) releasesPart(w http.ResponseWriter, r *http.Request)  { d.part("releases")(w, r) }

// rollback rolls the app back to the posted version, as `manifold rollback` does, with
// the token's name as the author.
func (d *Dashboard) rollback(w http.ResponseWriter, r *http.Request) {
	app, env := r.PathValue("app"), r.PathValue("env")
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	version, err := strconv.Atoi(r.PostForm.Get("version"))
	if err != nil || version <= 0 {
		http.Error(w, "version: want a release number", http.StatusBadRequest)
		return
	}
	flash := ""
	release, err := d.opts.Daemon.Rollback(r.Context(), app, env, version, principalOf(r.Context()).Name)
	if err != nil {
		flash = "Rollback failed: " + err.Error()
	} else {
		flash = fmt.Sprintf("Rolled back to v%d: v%d runs.", version, release.Version)
	}
	http.Redirect(w, r, "/apps/"+env+"/"+app+"?flash="+url.QueryEscape(flash), http.StatusSeeOther)
}

// pipelineData is the pipeline view: each app's environments side by side, in the
// order a slug travels (review apps, then the others, staging, production), with what
// runs in each and the promotion that would carry a slug one step on.
type pipelineData struct {
	Now  time.Time
	Who  string
	Envs []string
	Apps []pipelineApp
}

type pipelineApp struct {
	App   string
	Cells []pipelineCell
}

type pipelineCell struct {
	Env     string
	Present bool
	State   string
	Release int
	Slug    string
	From    string // the pin's origin ("staging v42") when the release was promoted
	Promote string // the command that promotes this environment's slug to the next one
}

// envRank orders environments as a pipeline does.
func envRank(env string) int {
	switch {
	case strings.HasPrefix(env, "pr-") || strings.HasPrefix(env, "review-"):
		return 0
	case env == "staging":
		return 2
	case env == "production":
		return 3
	}
	return 1
}

func (d *Dashboard) pipelineData(r *http.Request) pipelineData {
	who := principalOf(r.Context())
	out := pipelineData{Now: d.opts.Now(), Who: who.Name}
	status := map[plan.AppKey]reconciler.AppStatus{}
	envs := map[string]bool{}
	apps := map[string]bool{}
	for _, s := range d.opts.Daemon.Status().Apps {
		if who.Allows(ScopeRead, s.App) {
			status[plan.AppKey{App: s.App, Env: s.Env}] = s
			envs[s.Env], apps[s.App] = true, true
		}
	}
	pins := map[plan.AppKey]string{}
	for _, a := range d.opts.Daemon.Apps() {
		if a.Pin != nil {
			pins[plan.KeyOf(&a)] = a.Pin.From
		}
	}
	out.Envs = slices.SortedFunc(maps.Keys(envs), func(a, b string) int {
		return cmp.Or(cmp.Compare(envRank(a), envRank(b)), cmp.Compare(a, b))
	})
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		row := pipelineApp{App: app}
		for _, env := range out.Envs {
			key := plan.AppKey{App: app, Env: env}
			s, ok := status[key]
			cell := pipelineCell{Env: env, Present: ok, State: s.State, Release: s.Release, From: pins[key]}
			if ok {
				if _, releases, err := d.opts.Daemon.Releases(app, env); err == nil {
					for _, rel := range releases {
						if rel.Version == s.Release {
							cell.Slug = rel.SlugKey
							break
						}
					}
				}
			}
			row.Cells = append(row.Cells, cell)
		}
		// Promote each slug to the next environment that runs the app, where it differs.
		for i := range row.Cells {
			if !row.Cells[i].Present || row.Cells[i].Slug == "" || envRank(row.Cells[i].Env) == 0 {
				continue
			}
			for j := i + 1; j < len(row.Cells); j++ {
				if row.Cells[j].Present {
					if row.Cells[j].Slug != row.Cells[i].Slug {
						row.Cells[i].Promote = fmt.Sprintf("manifold promote -a %s --from %s --to %s", app, row.Cells[i].Env, row.Cells[j].Env)
					}
					break
				}
			}
		}
		out.Apps = append(out.Apps, row)
	}
	return out
}

func (d *Dashboard) pipeline(w http.ResponseWriter, r *http.Request) {
	d.render(w, "pipeline.html", d.pipelineData(r))
}

// shortCommit is a commit as people read it: 7 hex digits of a git commit, or of a
// folder's content digest ("dir:1a2b3c4").
func shortCommit(id string) string {
	if rest, ok := strings.CutPrefix(id, "dir:sha256:"); ok {
		return "dir:" + rest[:min(len(rest), 7)]
	}
	return id[:min(len(id), 7)]
}

// answersHTTP tells whether an app has web dynos, so that a link to it leads somewhere.
func answersHTTP(app spec.App) bool {
	web, ok := app.Process("web")
	return ok && web.Count > 0
}
