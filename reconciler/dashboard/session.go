package dashboard

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"sync"
	"time"
)

// sessionCookie holds the session id: HttpOnly (no script reads it), SameSite=Strict
// (no other site's page sends it), Secure under TLS.
const sessionCookie = "manifold_session"

type session struct {
	principal Principal
	expires   time.Time
}

// sessions maps a random id to who logged in, until it expires. It lives in memory: a
// daemon restart logs everyone out, which a token's holder undoes at once.
type sessions struct {
	now func() time.Time
	ttl time.Duration
	mu  sync.Mutex
	all map[string]session
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, all: map[string]session{}}
}

func (s *sessions) create(p Principal) string {
	var raw [32]byte
	_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails (Go 1.24+)
	id := base64.RawURLEncoding.EncodeToString(raw[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for k, v := range s.all {
		if now.After(v.expires) {
			delete(s.all, k)
		}
	}
	s.all[id] = session{principal: p, expires: now.Add(s.ttl)}
	return id
}

func (s *sessions) get(id string) (Principal, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.all[id]
	if !ok || s.now().After(v.expires) {
		delete(s.all, id)
		return Principal{}, false
	}
	return v.principal, true
}

func (s *sessions) remove(id string) {
	s.mu.Lock()
	delete(s.all, id)
	s.mu.Unlock()
}

type principalKey struct{}

func principalOf(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// need serves h to a logged-in principal allowed scope on the request's app (or the
// platform); others go to /login (pages) or get 403.
func (d *Dashboard) need(scope Scope, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cookie, err := r.Cookie(sessionCookie)
		var p Principal
		ok := false
		if err == nil {
			p, ok = d.sessions.get(cookie.Value)
		}
		if !ok {
			if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
				http.Redirect(w, r, "/login", http.StatusSeeOther)
				return
			}
			http.Error(w, "log in first", http.StatusUnauthorized)
			return
		}
		if !p.Allows(scope, r.PathValue("app")) {
			http.Error(w, "this token may not "+string(scope)+" here", http.StatusForbidden)
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (d *Dashboard) loginPage(w http.ResponseWriter, r *http.Request) {
	if token := r.URL.Query().Get("token"); token != "" {
		// The one-click URL `make run` prints: log in, then drop the token from the
		// address bar at once. Only when the URL was opened directly (typed, pasted,
		// clicked in a terminal): a link on another site must not log the browser into
		// that site's session (login CSRF).
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "none" && site != "same-origin" {
			w.WriteHeader(http.StatusForbidden)
			d.render(w, "login.html", map[string]any{"Error": "A login link from another site is refused: open it directly."})
			return
		}
		d.startSession(w, r, token)
		return
	}
	d.render(w, "login.html", map[string]any{"Error": ""})
}

func (d *Dashboard) login(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	d.startSession(w, r, r.PostForm.Get("token"))
}

func (d *Dashboard) startSession(w http.ResponseWriter, r *http.Request, token string) {
	p, err := d.opts.Tokens.Verify(r.Context(), token)
	if err != nil || !p.Allows(ScopeRead, "") {
		w.WriteHeader(http.StatusUnauthorized)
		d.render(w, "login.html", map[string]any{"Error": "That token is not valid, or may not read."})
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: d.sessions.create(p), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(d.opts.SessionTTL / time.Second),
	})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (d *Dashboard) logout(w http.ResponseWriter, r *http.Request) {
	if cookie, err := r.Cookie(sessionCookie); err == nil {
		d.sessions.remove(cookie.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}
