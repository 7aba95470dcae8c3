package reconciler

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/router"
	"github.com/manifold-paas/manifold/spec"
)

// refreshRoutes rebuilds the router table from the spec's domains and the web dynos
// that are up, leaving out those about to stop, and swaps it in.
//
// Refreshes run at once (a pass, the events goroutine); each takes a ticket and the
// draining set before it lists, and one that an older List would make stale never
// replaces a newer table: else a refresh that listed a dyno before stopDynos marked it
// could swap it back in while (or after) it stops.
func (r *Reconciler) refreshRoutes(ctx context.Context) error {
	r.mu.Lock()
	r.routesAsked++
	ticket := r.routesAsked
	draining := maps.Clone(r.draining)
	r.mu.Unlock()
	dynos, err := r.opts.Driver.List(ctx)
	if err != nil {
		return fmt.Errorf("list dynos: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ticket < r.routesSwapped {
		return nil // a refresh that listed later has swapped its table in
	}
	r.routesSwapped = ticket
	r.opts.Router.Swap(routingTable(slices.Concat(r.desired, r.reviews), dynos, draining, r.wantsEnv))
	return nil
}

// routingTable is pure: hosts of each app lead to its web dynos that are up.
func routingTable(apps []spec.App, dynos []drivers.Dyno, draining map[string]bool, wantsEnv func(string) bool) router.Table {
	table := router.Table{Hosts: map[string]*router.Route{}}
	routes := map[plan.AppKey]*router.Route{}
	for i := range apps {
		app := &apps[i]
		if !wantsEnv(app.Env) {
			continue
		}
		route := &router.Route{App: app.Name, Env: app.Env}
		routes[plan.KeyOf(app)] = route
		for _, host := range app.Domains {
			table.Hosts[strings.ToLower(host)] = route
		}
	}
	for _, d := range dynos {
		route, ok := routes[plan.AppKey{Env: d.Spec.Env, App: d.Spec.App}]
		if !ok || d.Spec.Type != "web" || draining[d.ID] {
			continue
		}
		switch d.State {
		case drivers.StateUp:
			if d.Addr != "" {
				route.Backends = append(route.Backends, router.Backend{Dyno: d.Name, Addr: d.Addr})
			}
		case drivers.StateCrashed:
			route.Crashed++
		}
	}
	for _, route := range routes {
		slices.SortFunc(route.Backends, func(a, b router.Backend) int { return strings.Compare(a.Dyno+a.Addr, b.Dyno+b.Addr) })
	}
	return table
}
