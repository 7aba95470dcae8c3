package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/api/tokens"
	"github.com/manifold-paas/manifold/reconciler/ledger"
)

// asLocal serves h as the socket does: every request is the local user's (admin).
func asLocal(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), LocalUser("tester"))))
	})
}

// recordingDaemon remembers who rolled back and who ran a one-off.
type recordingDaemon struct {
	stubDaemon
	mu      sync.Mutex
	authors []string
}

func (d *recordingDaemon) Rollback(_ context.Context, _, _ string, _ int, author string) (ledger.Release, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.authors = append(d.authors, "rollback by "+author)
	return ledger.Release{Author: author}, nil
}

func (d *recordingDaemon) RunOneOff(_ context.Context, o reconciler.OneOff) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.authors = append(d.authors, "run by "+o.Author)
	return 0, nil
}

type emptyLogs struct{}

func (emptyLogs) Recent(logs.Filter, int) []logs.Line { return nil }
func (emptyLogs) Tail(ctx context.Context, _ logs.Filter, _ int) <-chan logs.Line {
	lines := make(chan logs.Line)
	go func() { <-ctx.Done(); close(lines) }()
	return lines
}

// tokenServer serves the API over real HTTP with a real token file holding one token
// of each scope, one deploy token limited to app hello, and one revoked token.
func tokenServer(t testing.TB) (url string, secrets map[string]string, daemon *recordingDaemon) {
	t.Helper()
	store, err := tokens.Open(filepath.Join(t.TempDir(), "tokens.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	secrets = map[string]string{}
	for _, scope := range tokens.Scopes {
		secrets[string(scope)], _, err = store.Create(tokens.Token{Name: string(scope) + "-token", Scope: scope}, 0)
		if err != nil {
			t.Fatal(err)
		}
	}
	secrets["hello-deploy"], _, _ = store.Create(tokens.Token{Name: "ci", Scope: tokens.ScopeDeploy, Apps: []string{"hello"}}, 0)
	secrets["revoked"], _, _ = store.Create(tokens.Token{Name: "gone", Scope: tokens.ScopeAdmin}, 0)
	if err := store.Revoke("gone"); err != nil {
		t.Fatal(err)
	}
	daemon = &recordingDaemon{}
	srv := httptest.NewServer(Handler(Options{Daemon: daemon, Logs: emptyLogs{}, Tokens: store}))
	t.Cleanup(srv.Close)
	return srv.URL, secrets, daemon
}

// TestRouteScopes calls every route with every kind of caller: 401 without a valid
// token, 403 outside its scope or apps, the route's own answer otherwise.
func TestRouteScopes(t *testing.T) {
	t.Parallel()
	base, secrets, _ := tokenServer(t)
	bodies := map[string]string{
		"POST /v1/reconcile":           `{"app":"hello"}`,
		"POST /v1/apps/{app}/rollback": `{"version":1}`,
		"POST /v1/apps/{app}/run":      `{"command":"true"}`,
		"POST /v1/tokens":              `{"name":"new-%s","scope":"read"}`,
	}
	ok := map[string]int{"POST /v1/tokens": http.StatusCreated, "DELETE /v1/tokens/{name}": http.StatusNotFound}
	// Who may call what, by scope: the contract of docs/api.md.
	allowed := map[tokens.Scope][]tokens.Scope{
		tokens.ScopeRead:   {tokens.ScopeRead},
		tokens.ScopeDeploy: {tokens.ScopeRead, tokens.ScopeDeploy},
		tokens.ScopeRun:    {tokens.ScopeRead, tokens.ScopeRun},
		tokens.ScopeAdmin:  tokens.Scopes,
	}
	for _, rt := range (&server{}).routes() {
		method, path, _ := strings.Cut(rt.pattern, " ")
		for _, caller := range []string{"none", "garbage", "revoked", "read", "deploy", "run", "admin", "hello-deploy", "hello-deploy on other"} {
			t.Run(rt.pattern+" as "+caller, func(t *testing.T) {
				app := "hello"
				if caller == "hello-deploy on other" {
					app = "other"
				}
				url := base + strings.NewReplacer("{app}", app, "{name}", "nope").Replace(path)
				body := bodies[rt.pattern]
				if strings.Contains(body, "%s") {
					body = fmt.Sprintf(body, strings.ReplaceAll(caller, " ", "-"))
				}
				if rt.pattern == "POST /v1/reconcile" {
					body = `{"app":"` + app + `"}`
				}
				req, _ := http.NewRequest(method, url, strings.NewReader(body))
				switch caller {
				case "none":
				case "garbage":
					req.Header.Set("Authorization", "Bearer mf_notatoken")
				case "hello-deploy on other":
					req.Header.Set("Authorization", "Bearer "+secrets["hello-deploy"])
				default:
					req.Header.Set("Authorization", "Bearer "+secrets[caller])
				}
				want := ok[rt.pattern]
				if want == 0 {
					want = http.StatusOK
				}
				switch caller {
				case "none", "garbage", "revoked":
					want = http.StatusUnauthorized
				case "hello-deploy", "hello-deploy on other":
					switch {
					case !tokens.ScopeDeploy.Allows(rt.scope), rt.apps == everyApp, app != "hello":
						want = http.StatusForbidden
					}
				default:
					permitted := false
					for _, s := range allowed[tokens.Scope(caller)] {
						permitted = permitted || s == rt.scope
					}
					if !permitted {
						want = http.StatusForbidden
					}
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != want {
					t.Fatalf("%s %s as %s: %d %s, want %d", method, url, caller, resp.StatusCode, data, want)
				}
				if want == http.StatusUnauthorized || want == http.StatusForbidden {
					var apiErr Error
					if err := json.Unmarshal(data, &apiErr); err != nil || apiErr.Error == "" {
						t.Errorf("error answer is not a JSON error: %q", data)
					}
				}
			})
		}
	}
}

// TestAuthorIsTheTokenName: a rollback's author and a one-off's are the token's name,
// whatever the body claims.
func TestAuthorIsTheTokenName(t *testing.T) {
	t.Parallel()
	base, secrets, daemon := tokenServer(t)
	client := NewClient(base)
	client.Token = secrets["hello-deploy"]
	release, err := client.Rollback(context.Background(), "hello", RollbackRequest{Version: 3})
	if err != nil || release.Author != "ci" {
		t.Fatalf("rollback: %+v, %v", release, err)
	}
	client.Token = secrets["run"]
	if _, err := client.Run(context.Background(), "hello", RunRequest{Command: "true"}, nil, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	daemon.mu.Lock()
	defer daemon.mu.Unlock()
	if got := strings.Join(daemon.authors, ", "); got != "rollback by ci, run by run-token" {
		t.Errorf("authors: %s", got)
	}
}

// TestCrossSitePost: a browser page of another site cannot POST, even with a token.
func TestCrossSitePost(t *testing.T) {
	t.Parallel()
	base, secrets, daemon := tokenServer(t)
	post := func(crossSite bool) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/apps/hello/rollback", strings.NewReader(`{"version":1}`))
		req.Header.Set("Authorization", "Bearer "+secrets["admin"])
		if crossSite {
			req.Header.Set("Origin", "http://evil.example")
			req.Header.Set("Sec-Fetch-Site", "cross-site")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(data)
	}
	if code, body := post(true); code != http.StatusForbidden || !strings.Contains(body, `"error"`) {
		t.Errorf("cross-site POST: %d %s, want a 403 JSON error", code, body)
	}
	daemon.mu.Lock()
	if len(daemon.authors) != 0 {
		t.Errorf("the cross-site POST rolled back: %v", daemon.authors)
	}
	daemon.mu.Unlock()
	if code, body := post(false); code != http.StatusOK {
		t.Errorf("same POST from the CLI: %d %s", code, body)
	}
}

// serveSocket serves the API on a real unix socket in a temp dir.
func serveSocket(t *testing.T, refuse PeerFilter) (string, *recordingDaemon) {
	t.Helper()
	// Short: a unix socket's path is limited to 108 bytes.
	dir, err := os.MkdirTemp("", "mf")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	path := filepath.Join(dir, SocketName)
	ln, err := ListenSocket(path)
	if err != nil {
		t.Fatal(err)
	}
	daemon := &recordingDaemon{}
	srv := &http.Server{Handler: Handler(Options{Daemon: daemon, Logs: emptyLogs{}}), ConnContext: ConnContext}
	go func() { _ = srv.Serve(LocalListener(ln, refuse, nil)) }()
	t.Cleanup(func() { srv.Close() })
	return path, daemon
}

func TestSocket(t *testing.T) {
	t.Parallel()
	path, daemon := serveSocket(t, nil)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode()&os.ModeSocket == 0 || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket of mode 0600", info.Mode())
	}
	// No token: the socket's peer is the local user, admin.
	client := NewClient("unix://" + path)
	if _, err := client.Status(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Tokens(context.Background()); err == nil {
		t.Error("token list without a token store answered")
	}
	release, err := client.Rollback(context.Background(), "hello", RollbackRequest{Version: 2})
	if err != nil {
		t.Fatal(err)
	}
	me, _ := user.Current()
	if release.Author != me.Username {
		t.Errorf("rollback author %q, want the local user %q", release.Author, me.Username)
	}
	if len(daemon.authors) != 1 {
		t.Errorf("rollbacks: %v", daemon.authors)
	}
	// A second daemon on the same state dir is refused.
	if _, err := ListenSocket(path); err == nil || !strings.Contains(err.Error(), "another daemon") {
		t.Errorf("second listener: %v", err)
	}
}

func TestSocketRefusesPeer(t *testing.T) {
	t.Parallel()
	var seen Peer
	var mu sync.Mutex
	path, daemon := serveSocket(t, func(p Peer) string {
		mu.Lock()
		defer mu.Unlock()
		seen = p
		return "a dyno"
	})
	_, err := NewClient("unix://"+path).Rollback(context.Background(), "hello", RollbackRequest{Version: 2})
	if err == nil {
		t.Fatal("a refused peer's request succeeded")
	}
	mu.Lock()
	defer mu.Unlock()
	if seen.PID != os.Getpid() || seen.UID != os.Getuid() {
		t.Errorf("peer %+v, want pid %d uid %d", seen, os.Getpid(), os.Getuid())
	}
	if len(daemon.authors) != 0 {
		t.Errorf("refused peer's rollback ran: %v", daemon.authors)
	}
}

// BenchmarkStatus is GET /v1/status without a token check (the socket's principal)
// and with one (a bearer token looked up in the bbolt file), through the handler and
// over loopback HTTP.
func BenchmarkStatus(b *testing.B) {
	store, err := tokens.Open(filepath.Join(b.TempDir(), "tokens.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	secret, _, err := store.Create(tokens.Token{Name: "bench", Scope: tokens.ScopeRead}, 0)
	if err != nil {
		b.Fatal(err)
	}
	h := Handler(Options{Daemon: stubDaemon{}, Logs: emptyLogs{}, Tokens: store})
	local := WithPrincipal(context.Background(), LocalUser("bench"))
	b.Run("handler/no-token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequestWithContext(local, http.MethodGet, "/v1/status", nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	b.Run("handler/token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			req := httptest.NewRequest(http.MethodGet, "/v1/status", nil)
			req.Header.Set("Authorization", "Bearer "+secret)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				b.Fatal(rec.Code)
			}
		}
	})
	// Over loopback HTTP: "no-token" connections carry a principal the way the
	// socket's do.
	for _, name := range []string{"http/no-token", "http/token"} {
		b.Run(name, func(b *testing.B) {
			s := httptest.NewServer(h)
			if name == "http/no-token" {
				s.Close()
				s = httptest.NewUnstartedServer(h)
				s.Config.ConnContext = func(ctx context.Context, _ net.Conn) context.Context {
					return WithPrincipal(ctx, LocalUser("bench"))
				}
				s.Start()
			}
			defer s.Close()
			client := s.Client()
			b.ReportAllocs()
			for b.Loop() {
				req, _ := http.NewRequest(http.MethodGet, s.URL+"/v1/status", nil)
				if name == "http/token" {
					req.Header.Set("Authorization", "Bearer "+secret)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatal(resp.StatusCode)
				}
			}
		})
	}
}

// TestExtraRoutes: routes added with Options.Routes (the metrics history, gc) are
// guarded as the table's are: by scope, and by app when the path names one.
func TestExtraRoutes(t *testing.T) {
	t.Parallel()
	store, err := tokens.Open(filepath.Join(t.TempDir(), "tokens.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	create := func(tok tokens.Token) string {
		secret, _, err := store.Create(tok, 0)
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	read := create(tokens.Token{Name: "r", Scope: tokens.ScopeRead})
	limited := create(tokens.Token{Name: "l", Scope: tokens.ScopeRead, Apps: []string{"hello"}})
	admin := create(tokens.Token{Name: "a", Scope: tokens.ScopeAdmin})
	extra := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) })
	srv := httptest.NewServer(Handler(Options{Daemon: stubDaemon{}, Tokens: store, Routes: []Route{
		{Pattern: "GET /v1/apps/{app}/metrics", Scope: tokens.ScopeRead, Handler: extra},
		{Pattern: "POST /v1/gc", Scope: tokens.ScopeAdmin, Handler: extra},
	}}))
	defer srv.Close()
	for _, tc := range []struct {
		method, path, token string
		want                int
	}{
		{http.MethodGet, "/v1/apps/hello/metrics", "", http.StatusUnauthorized},
		{http.MethodGet, "/v1/apps/hello/metrics", read, http.StatusTeapot},
		{http.MethodGet, "/v1/apps/hello/metrics", limited, http.StatusTeapot},
		{http.MethodGet, "/v1/apps/other/metrics", limited, http.StatusForbidden},
		{http.MethodPost, "/v1/gc", read, http.StatusForbidden},
		{http.MethodPost, "/v1/gc", admin, http.StatusTeapot},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s with token %.6s: %d, want %d", tc.method, tc.path, tc.token, resp.StatusCode, tc.want)
		}
	}
}
