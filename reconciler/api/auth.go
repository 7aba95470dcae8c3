package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/reconciler/api/tokens"
)

// Principal is who makes a request: a token's holder (over TCP) or the local user at
// the other end of the unix socket (admin of every app).
type Principal struct {
	// Name is the token's name or the local user's name; it is the author of what the
	// request changes.
	Name  string
	Scope tokens.Scope
	// Apps limits the principal to these apps; empty means every app.
	Apps []string
	// Local is true for a socket peer.
	Local bool
}

// allowsApp reports whether p may act on app.
func (p Principal) allowsApp(app string) bool {
	return tokens.Token{Apps: p.Apps}.AllowsApp(app)
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p: a request whose context has a principal is
// authenticated already (the unix socket's connections carry their peer this way).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal ctx carries.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// LocalUser is the principal of a socket peer named name: the machine's user, who
// could read the state directory anyway.
func LocalUser(name string) Principal {
	return Principal{Name: name, Scope: tokens.ScopeAdmin, Local: true}
}

// TokenStore is what the API needs of the token file (tokens.Store).
type TokenStore interface {
	Lookup(secret string) (tokens.Token, error)
	Create(t tokens.Token, ttl time.Duration) (string, tokens.Token, error)
	List() ([]tokens.Token, error)
	Revoke(name string) error
}

var _ TokenStore = (*tokens.Store)(nil)

// authenticate finds the request's principal: the one its connection carries, else
// the bearer token's. Without either it answers 401.
func (s *server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := PrincipalFrom(r.Context()); ok {
			next.ServeHTTP(w, r)
			return
		}
		secret, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !found || s.tokens == nil {
			s.unauthorized(w, r, "missing bearer token (Authorization: Bearer mf_...)")
			return
		}
		tok, err := s.tokens.Lookup(strings.TrimSpace(secret))
		if err != nil {
			s.unauthorized(w, r, err.Error())
			return
		}
		p := Principal{Name: tok.Name, Scope: tok.Scope, Apps: tok.Apps}
		next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
	})
}

func (s *server) unauthorized(w http.ResponseWriter, r *http.Request, why string) {
	s.log.Info("api: unauthenticated request refused", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr, "why", why)
	w.Header().Set("WWW-Authenticate", `Bearer realm="manifold"`)
	writeError(w, http.StatusUnauthorized, errors.New(why))
}

// route is one API route, the scope it needs and how it names its app.
type route struct {
	pattern string
	scope   tokens.Scope
	apps    appRule
	handler http.HandlerFunc
}

// appRule says how a route's apps are checked against a principal limited to some.
type appRule int

const (
	// appInPath: the {app} of the path must be one of the principal's.
	appInPath appRule = iota
	// appInBody: the handler checks the app it reads from the body (allowApp).
	appInBody
	// everyApp: the route covers every app (status, plan, tokens): only a principal
	// limited to no app may call it.
	everyApp
)

// authorize answers 403 unless the request's principal holds the route's scope and
// its app.
func (s *server) authorize(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		if !p.Scope.Allows(rt.scope) {
			s.forbidden(w, r, fmt.Errorf("%s needs scope %s; %s has scope %s", rt.pattern, rt.scope, p.Name, p.Scope))
			return
		}
		switch rt.apps {
		case appInPath:
			if !s.allowApp(w, r, r.PathValue("app")) {
				return
			}
		case everyApp:
			if len(p.Apps) > 0 {
				s.forbidden(w, r, fmt.Errorf("%s covers every app; %s is limited to %s", rt.pattern, p.Name, strings.Join(p.Apps, ", ")))
				return
			}
		}
		rt.handler(w, r)
	})
}

// allowApp answers 403 and returns false unless the request's principal may act on
// app ("" meaning every app).
func (s *server) allowApp(w http.ResponseWriter, r *http.Request, app string) bool {
	p, _ := PrincipalFrom(r.Context())
	if len(p.Apps) == 0 || (app != "" && p.allowsApp(app)) {
		return true
	}
	if app == "" {
		app = "every app"
	}
	s.forbidden(w, r, fmt.Errorf("%s may not act on %s (limited to %s)", p.Name, app, strings.Join(p.Apps, ", ")))
	return false
}

func (s *server) forbidden(w http.ResponseWriter, r *http.Request, err error) {
	s.log.Info("api: request refused", "method", r.Method, "path", r.URL.Path, "by", who(r), "why", err)
	writeError(w, http.StatusForbidden, err)
}

// who is the request's principal's name, for authors and log lines.
func who(r *http.Request) string {
	p, _ := PrincipalFrom(r.Context())
	return p.Name
}

// crossOrigin refuses browser requests from other sites (a page POSTing to the API
// with the user's ambient access), answering 403 as JSON.
func crossOrigin(next http.Handler) http.Handler {
	protect := http.NewCrossOriginProtection()
	protect.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusForbidden, errors.New("cross-origin request refused"))
	}))
	return protect.Handler(next)
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	Name  string       `json:"name"`
	Scope tokens.Scope `json:"scope"`
	Apps  []string     `json:"apps,omitempty"`
	// TTL is how long the token works, as a Go duration ("720h"); empty: forever.
	TTL string `json:"ttl,omitempty"`
}

// NewToken is the answer of POST /v1/tokens: the only time the secret is shown.
type NewToken struct {
	Token  tokens.Token `json:"token"`
	Secret string       `json:"secret"`
}

func (s *server) createToken(w http.ResponseWriter, r *http.Request) {
	var req TokenRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read body: %w", err))
		return
	}
	var ttl time.Duration
	if req.TTL != "" {
		var err error
		if ttl, err = time.ParseDuration(req.TTL); err != nil || ttl <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Errorf("ttl: want a positive duration like 720h, got %q", req.TTL))
			return
		}
	}
	secret, tok, err := s.tokens.Create(tokens.Token{Name: req.Name, Scope: req.Scope, Apps: req.Apps, CreatedBy: who(r)}, ttl)
	switch {
	case errors.Is(err, tokens.ErrExists):
		writeError(w, http.StatusConflict, err)
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, err)
		return
	}
	s.log.Info("api: token created", "token", tok.Name, "scope", tok.Scope, "apps", tok.Apps, "by", who(r))
	writeJSON(w, http.StatusCreated, NewToken{Token: tok, Secret: secret})
}

func (s *server) listTokens(w http.ResponseWriter, _ *http.Request) {
	list, err := s.tokens.List()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	if list == nil {
		list = []tokens.Token{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (s *server) revokeToken(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := s.tokens.Revoke(name); err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, tokens.ErrNotFound) {
			code = http.StatusNotFound
		}
		writeError(w, code, err)
		return
	}
	s.log.Info("api: token revoked", "token", name, "by", who(r))
	w.WriteHeader(http.StatusNoContent)
}
