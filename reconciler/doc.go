// Package reconciler is the loop that makes the running world match the config repo:
// each pass loads the spec, and for every app applies what reconciler/plan's field
// table says a difference means (release, restart, scale, router, drains) through the
// slug builder, the release ledger, a driver, the router and the logplex.
package reconciler
