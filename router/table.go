// Package router is manifold's HTTP front door: it routes requests by Host to an app's
// web dynos with Heroku's semantics (forwarding headers, H-codes, router log lines)
// and takes a new routing table atomically on every formation change.
package router

// Backend is one web dyno that takes traffic.
type Backend struct {
	// Dyno is the dyno's name (web.1), used in router log lines.
	Dyno string `json:"dyno"`
	// Addr is host:port of the dyno's $PORT.
	Addr string `json:"addr"`
}

// Route is where one app's hosts lead.
type Route struct {
	App string `json:"app"`
	Env string `json:"env"`
	// Backends are the web dynos that are up (and passed their health check).
	Backends []Backend `json:"backends"`
	// Crashed counts the app's web dynos that are crashed: with no Backends, a request
	// gets H10 (app crashed) when Crashed > 0 and H14 (no web dynos running) otherwise.
	Crashed int `json:"crashed"`
}

// Table maps a lower-case host name (no port) to its route. A Table handed to Swap is
// never modified afterwards.
type Table struct {
	Hosts map[string]*Route `json:"hosts"`
}
