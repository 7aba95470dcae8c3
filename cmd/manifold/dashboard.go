package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/manifold-paas/manifold/reconciler/api/tokens"
	"github.com/manifold-paas/manifold/reconciler/dashboard"
)

// dashboardLoginToken names the token `up --dashboard-login` makes for the one-click
// login URL (make run): replaced at every start, valid for a day.
const (
	dashboardLoginToken = "dashboard-local"
	dashboardLoginTTL   = 24 * time.Hour
)

// dashboardTokens checks the dashboard's logins against the API's token store: the
// same tokens, the same scopes (read to look, deploy to roll back) and apps.
type dashboardTokens struct{ store *tokens.Store }

var _ dashboard.Tokens = dashboardTokens{}

func (d dashboardTokens) Verify(_ context.Context, secret string) (dashboard.Principal, error) {
	tok, err := d.store.Lookup(secret)
	if err != nil {
		return dashboard.Principal{}, err
	}
	return dashboard.Principal{Name: tok.Name, Allows: func(scope dashboard.Scope, app string) bool {
		return tok.Scope.Allows(tokens.Scope(scope)) && (app == "" || tok.AllowsApp(app))
	}}, nil
}

// dashboardLogin replaces the local login token and returns the one-click URL.
func dashboardLogin(store *tokens.Store, base string) (string, error) {
	if err := store.Revoke(dashboardLoginToken); err != nil && !errors.Is(err, tokens.ErrNotFound) {
		return "", err
	}
	secret, _, err := store.Create(tokens.Token{Name: dashboardLoginToken, Scope: tokens.ScopeDeploy, CreatedBy: "manifold up --dashboard-login"}, dashboardLoginTTL)
	if err != nil {
		return "", fmt.Errorf("dashboard login token: %w", err)
	}
	return base + "/login?token=" + secret, nil
}
