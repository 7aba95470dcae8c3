// Package api is the daemon's JSON HTTP API (documented in docs/api.md), guarded by who
// calls (the unix socket's peer, or a bearer token's scope and apps), and the client the
// CLI uses to reach it: status, ps, releases, rollback, run, reconcile, logs and tokens.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/api/tokens"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

// Daemon is what the API serves (reconciler.Reconciler).
type Daemon interface {
	Status() reconciler.Status
	Reconcile(ctx context.Context, app string) error
	Dynos(ctx context.Context, app, env string) (spec.App, []drivers.Dyno, error)
	Releases(app, env string) (spec.App, []ledger.Release, error)
	Rollback(ctx context.Context, app, env string, to int, author string) (ledger.Release, error)
	RunOneOff(ctx context.Context, oneOff reconciler.OneOff) (int, error)
	LivePlan(ctx context.Context) (reconciler.LivePlan, error)
}

// LogStream is the logplex's read side (logs.Plex).
type LogStream interface {
	Recent(f logs.Filter, n int) []logs.Line
	Tail(ctx context.Context, f logs.Filter, replay int) <-chan logs.Line
}

// Ps is the answer of GET /v1/apps/{app}/dynos.
type Ps struct {
	App       string         `json:"app"`
	Env       string         `json:"env"`
	Processes []spec.Process `json:"processes"`
	Dynos     []drivers.Dyno `json:"dynos"`
}

// Releases is the answer of GET /v1/apps/{app}/releases.
type Releases struct {
	App      string           `json:"app"`
	Env      string           `json:"env"`
	Releases []ledger.Release `json:"releases"`
}

// RollbackRequest is the body of POST /v1/apps/{app}/rollback.
type RollbackRequest struct {
	Env     string `json:"env,omitempty"`
	Version int    `json:"version"`
}

// RunRequest is the body of POST /v1/apps/{app}/run, or its query (env, command or
// arg…) when the body is the one-off's standard input.
type RunRequest struct {
	Env string `json:"env,omitempty"`
	// Command is the command line the dyno's shell runs. Args, instead, are the words
	// the user typed (query: one arg= each), joined by reconciler.CommandLine.
	Command string   `json:"command,omitempty"`
	Args    []string `json:"args,omitempty"`
	// TTY runs the one-off on a terminal of Rows x Cols with TERM=Term (query: tty=1,
	// rows, cols, term); its output then comes as stdout only.
	TTY  bool   `json:"tty,omitempty"`
	Rows int    `json:"rows,omitempty"`
	Cols int    `json:"cols,omitempty"`
	Term string `json:"term,omitempty"`
}

// RunFrame is one NDJSON frame of a run's answer: output (Stream stdout or stderr with
// Data, or Bytes when the output is not valid UTF-8, which a JSON string cannot carry),
// then a last frame with Exit or Error.
type RunFrame struct {
	Stream string `json:"stream,omitempty"`
	Data   string `json:"data,omitempty"`
	Bytes  []byte `json:"bytes,omitempty"` // base64 in JSON
	Exit   *int   `json:"exit,omitempty"`
	Error  string `json:"error,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}

// Options configure Handler.
type Options struct {
	Daemon Daemon
	Logs   LogStream
	// Tokens resolves bearer tokens; nil refuses every request that does not come
	// with a principal in its context (the socket's).
	Tokens TokenStore
	Logger *slog.Logger
	// Routes are more routes the daemon serves beside the API's own (the metrics
	// history, gc), guarded the same way.
	Routes []Route
}

// Route is a route served beside the API's own: Scope is what a token needs; a
// pattern with {app} is an app route (an app-limited token reaches only its apps),
// any other covers every app.
type Route struct {
	Pattern string
	Scope   tokens.Scope
	Handler http.Handler
}

// Handler returns the API: each route checks who calls it (a principal in the
// request's context, else a bearer token: 401), what it may do (its scope and apps:
// 403), and that it is not a browser page of another site (403).
func Handler(opts Options) http.Handler {
	s := &server{daemon: opts.Daemon, logs: opts.Logs, tokens: opts.Tokens, log: opts.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes() {
		mux.Handle(rt.pattern, s.authorize(rt))
	}
	for _, extra := range opts.Routes {
		apps := everyApp
		if strings.Contains(extra.Pattern, "{app}") {
			apps = appInPath
		}
		mux.Handle(extra.Pattern, s.authorize(route{extra.Pattern, extra.Scope, apps, extra.Handler.ServeHTTP}))
	}
	return crossOrigin(s.authenticate(mux))
}

// routes is the API's table: docs/api.md's, and the one the scope tests walk.
func (s *server) routes() []route {
	return []route{
		{"GET /v1/status", tokens.ScopeRead, everyApp, s.status},
		{"GET /v1/plan", tokens.ScopeRead, everyApp, s.plan},
		{"GET /v1/apps/{app}/dynos", tokens.ScopeRead, appInPath, s.dynos},
		{"GET /v1/apps/{app}/releases", tokens.ScopeRead, appInPath, s.releases},
		{"GET /v1/apps/{app}/logs", tokens.ScopeRead, appInPath, s.logLines},
		{"POST /v1/reconcile", tokens.ScopeDeploy, appInBody, s.reconcile},
		{"POST /v1/apps/{app}/rollback", tokens.ScopeDeploy, appInPath, s.rollback},
		{"POST /v1/apps/{app}/run", tokens.ScopeRun, appInPath, s.run},
		{"GET /v1/tokens", tokens.ScopeAdmin, everyApp, s.listTokens},
		{"POST /v1/tokens", tokens.ScopeAdmin, everyApp, s.createToken},
		{"DELETE /v1/tokens/{name}", tokens.ScopeAdmin, everyApp, s.revokeToken},
	}
}

type server struct {
	daemon Daemon
	logs   LogStream
	tokens TokenStore
	log    *slog.Logger
}

func (s *server) status(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.daemon.Status())
}

// plan answers what the newest spec would change in what runs.
func (s *server) plan(w http.ResponseWriter, r *http.Request) {
	live, err := s.daemon.LivePlan(r.Context())
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if live.Plan.Changes == nil {
		live.Plan.Changes = []plan.Change{}
	}
	writeJSON(w, http.StatusOK, live)
}

func (s *server) reconcile(w http.ResponseWriter, r *http.Request) {
	var body struct {
		App string `json:"app"`
	}
	if r.ContentLength != 0 {
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&body); err != nil {
			writeError(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
			return
		}
	}
	if !s.allowApp(w, r, body.App) {
		return
	}
	s.log.Info("api: reconcile", "app", body.App, "by", who(r))
	if err := s.daemon.Reconcile(r.Context(), body.App); err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, s.daemon.Status())
}

func (s *server) dynos(w http.ResponseWriter, r *http.Request) {
	app, dynos, err := s.daemon.Dynos(r.Context(), r.PathValue("app"), r.URL.Query().Get("env"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if dynos == nil {
		dynos = []drivers.Dyno{}
	}
	writeJSON(w, http.StatusOK, Ps{App: app.Name, Env: app.Env, Processes: app.Processes, Dynos: dynos})
}

func (s *server) releases(w http.ResponseWriter, r *http.Request) {
	app, releases, err := s.daemon.Releases(r.PathValue("app"), r.URL.Query().Get("env"))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	if releases == nil {
		releases = []ledger.Release{}
	}
	writeJSON(w, http.StatusOK, Releases{App: app.Name, Env: app.Env, Releases: releases})
}

func (s *server) rollback(w http.ResponseWriter, r *http.Request) {
	var req RollbackRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	// The author is who authenticated, never what the body says.
	release, err := s.daemon.Rollback(r.Context(), r.PathValue("app"), req.Env, req.Version, who(r))
	if err != nil {
		writeError(w, statusOf(err), err)
		return
	}
	writeJSON(w, http.StatusOK, release)
}

// run streams a one-off's output as NDJSON frames, flushed as they come. The request
// is either a JSON RunRequest (the one-off's stdin is empty) or, with the command in
// the query, a body that is the one-off's stdin, read while the output streams back.
func (s *server) run(w http.ResponseWriter, r *http.Request) {
	var req RunRequest
	var stdin io.Reader
	if query := r.URL.Query(); query.Has("command") || query.Has("arg") {
		req = RunRequest{Env: query.Get("env"), Command: query.Get("command"), Args: query["arg"], Term: query.Get("term"),
			TTY: query.Get("tty") == "1" || query.Get("tty") == "true"}
		req.Rows, _ = strconv.Atoi(query.Get("rows"))
		req.Cols, _ = strconv.Atoi(query.Get("cols"))
		// HTTP/1.1's server stops reading a request body once the answer begins,
		// unless told otherwise.
		if err := http.NewResponseController(w).EnableFullDuplex(); err != nil {
			writeError(w, http.StatusInternalServerError, fmt.Errorf("stream stdin: %w", err))
			return
		}
		stdin = r.Body
	} else if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	switch {
	case req.Command != "" && len(req.Args) > 0:
		writeError(w, http.StatusBadRequest, errors.New("give command or args, not both"))
		return
	case len(req.Args) > 0:
		req.Command = reconciler.CommandLine(req.Args)
	}
	if req.Command == "" {
		writeError(w, http.StatusBadRequest, errors.New("command is empty"))
		return
	}
	oneOff := reconciler.OneOff{
		App: r.PathValue("app"), Env: req.Env, Command: req.Command, Stdin: stdin, Author: who(r),
	}
	if req.TTY {
		if req.Rows < 0 || req.Rows > math.MaxUint16 || req.Cols < 0 || req.Cols > math.MaxUint16 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("terminal size %dx%d out of range", req.Rows, req.Cols))
			return
		}
		oneOff.Terminal = &drivers.TerminalSize{Rows: uint16(req.Rows), Cols: uint16(req.Cols)}
		oneOff.Term = req.Term
	}
	frames := &frameWriter{w: w, enc: json.NewEncoder(w)}
	oneOff.Stdout, oneOff.Stderr = frames.stream("stdout"), frames.stream("stderr")
	code, err := s.daemon.RunOneOff(r.Context(), oneOff)
	if err != nil {
		if !frames.started() {
			// Nothing streamed yet (no such app, no release): a plain error answer.
			writeError(w, statusOf(err), err)
			return
		}
		frames.write(RunFrame{Error: err.Error()})
		return
	}
	frames.write(RunFrame{Exit: &code})
}

// frameWriter serialises frames from the stdout and stderr copiers. The 200 and its
// header go out with the first frame, so that a run that fails before it starts
// answers with its own status code.
type frameWriter struct {
	mu    sync.Mutex
	w     http.ResponseWriter
	enc   *json.Encoder
	begun bool
}

func (f *frameWriter) started() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.begun
}

func (f *frameWriter) write(frame RunFrame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.begun {
		f.begun = true
		f.w.Header().Set("Content-Type", "application/x-ndjson")
		f.w.WriteHeader(http.StatusOK)
	}
	_ = f.enc.Encode(frame)
	if flusher, ok := f.w.(http.Flusher); ok {
		flusher.Flush()
	}
}

type streamWriter struct {
	frames *frameWriter
	name   string
}

func (f *frameWriter) stream(name string) io.Writer { return streamWriter{frames: f, name: name} }

func (s streamWriter) Write(p []byte) (int, error) {
	if utf8.Valid(p) {
		s.frames.write(RunFrame{Stream: s.name, Data: string(p)})
	} else {
		// Encoded before write returns: p may be reused after.
		s.frames.write(RunFrame{Stream: s.name, Bytes: p})
	}
	return len(p), nil
}

// logLines answers the newest lines (num, default 100) and, with tail=true, streams
// new ones until the client goes away. NDJSON, one logs.Line per line.
func (s *server) logLines(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	filter := logs.Filter{App: r.PathValue("app"), Env: query.Get("env"), Source: query.Get("source"), Dyno: query.Get("ps")}
	num := 100
	if v := query.Get("num"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("num: want a whole number, got %q", v))
			return
		}
		num = n
	}
	tail := query.Get("tail") == "true" || query.Get("tail") == "1"
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	flusher, _ := w.(http.Flusher)
	if !tail {
		for _, line := range s.logs.Recent(filter, num) {
			if err := enc.Encode(line); err != nil {
				return
			}
		}
		return
	}
	ctx := r.Context()
	lines := s.logs.Tail(ctx, filter, num)
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	for line := range lines {
		if err := enc.Encode(line); err != nil {
			// The client went away; Tail ends with ctx.
			for range lines {
			}
			return
		}
		if flusher != nil && len(lines) == 0 {
			flusher.Flush()
		}
	}
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, reconciler.ErrUnknownApp) || errors.Is(err, ledger.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ledger.ErrNotLive):
		return http.StatusConflict // a rollback to a release that never went live
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, Error{Error: err.Error()})
}
