package review_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/review"
	"github.com/manifold-paas/manifold/spec"
)

func commit(c byte) string { return strings.Repeat(string(c), 40) }

// names lists a decision's environments as "name@commit[0]".
func names(envs []review.Env) string {
	var out []string
	for _, e := range envs {
		out = append(out, e.Name+"@"+e.Commit[:1])
	}
	return strings.Join(out, " ")
}

func destroyed(ds []review.Destroyed) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Env.Name+": "+d.Reason)
	}
	return strings.Join(out, "; ")
}

// TestTracker walks a lifecycle step by step: each step is one listing (or a failed
// one) and the decisions it must give.
func TestTracker(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	tracker := review.NewTracker(spec.Review{Refs: []string{"refs/pull/*/head"}, Branches: []string{"review/*"}, TTLSeconds: 3600, Max: 2})
	steps := []struct {
		name                      string
		at                        time.Duration
		refs                      map[string]string
		err                       error
		create, redeploy, destroy string
		waiting                   string
	}{
		{name: "refs appear", refs: map[string]string{"refs/heads/main": commit('m'), "refs/pull/7/head": commit('a'), "refs/heads/review/login-form": commit('b')},
			create: "pr-7@a review-login-form@b"},
		{name: "a third waits for a slot", at: time.Minute, refs: map[string]string{"refs/pull/7/head": commit('a'), "refs/heads/review/login-form": commit('b'), "refs/pull/9/head": commit('c')},
			waiting: "pr-9"},
		{name: "a push redeploys", at: 2 * time.Minute, refs: map[string]string{"refs/pull/7/head": commit('d'), "refs/heads/review/login-form": commit('b'), "refs/pull/9/head": commit('c')},
			redeploy: "pr-7@d", waiting: "pr-9"},
		{name: "a failed listing changes nothing", at: 3 * time.Minute, err: errors.New("repository unreadable"), waiting: "pr-9"},
		{name: "again", at: 4 * time.Minute, err: errors.New("repository unreadable"), waiting: "pr-9"},
		{name: "one listing without pr-7 is not enough", at: 5 * time.Minute, refs: map[string]string{"refs/heads/review/login-form": commit('b'), "refs/pull/9/head": commit('c')},
			waiting: "pr-9"},
		{name: "the second destroys it, and pr-9 gets the slot", at: 6 * time.Minute, refs: map[string]string{"refs/heads/review/login-form": commit('b'), "refs/pull/9/head": commit('c')},
			destroy: "pr-7: its ref refs/pull/7/head is gone", create: "pr-9@c"},
		{name: "ttl: no push for an hour", at: 60*time.Minute + 30*time.Second, refs: map[string]string{"refs/heads/review/login-form": commit('b'), "refs/pull/9/head": commit('c')},
			destroy: "review-login-form: no push for 1h0m0s"},
		{name: "an expired ref stays gone until it moves", at: 60*time.Minute + 40*time.Second, refs: map[string]string{"refs/heads/review/login-form": commit('b'), "refs/pull/9/head": commit('c')}},
		{name: "a push revives it", at: 60*time.Minute + 50*time.Second, refs: map[string]string{"refs/heads/review/login-form": commit('e'), "refs/pull/9/head": commit('c')},
			create: "review-login-form@e"},
	}
	for _, s := range steps {
		var refs map[string]string
		if s.err == nil {
			refs = s.refs
		}
		d := tracker.Observe(start.Add(s.at), refs, s.err)
		if got := names(d.Create); got != s.create {
			t.Errorf("%s: create %q, want %q", s.name, got, s.create)
		}
		if got := names(d.Redeploy); got != s.redeploy {
			t.Errorf("%s: redeploy %q, want %q", s.name, got, s.redeploy)
		}
		if got := destroyed(d.Destroy); got != s.destroy {
			t.Errorf("%s: destroy %q, want %q", s.name, got, s.destroy)
		}
		var waiting []string
		for _, e := range tracker.Envs() {
			if e.State == review.StateWaiting {
				waiting = append(waiting, e.Name)
				if !strings.Contains(e.Reason, "2 review environments run at once") {
					t.Errorf("%s: %s waits with reason %q", s.name, e.Name, e.Reason)
				}
			}
		}
		if got := strings.Join(waiting, " "); got != s.waiting {
			t.Errorf("%s: waiting %q, want %q", s.name, got, s.waiting)
		}
		if (tracker.ListError != "") != (s.err != nil) {
			t.Errorf("%s: ListError %q", s.name, tracker.ListError)
		}
	}
}
