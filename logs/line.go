// Package logs is manifold's logplex: one bounded stream per app and environment that
// merges dyno output, platform events and deploy events, serves `manifold logs`
// (history and tail) and forwards every line to the app's syslog and HTTPS drains.
package logs

import "time"

// Sources of a Line, as Heroku names them.
const (
	SourceApp    = "app"    // a dyno's stdout and stderr
	SourceHeroku = "heroku" // the platform: router, dyno manager, builds
	SourceAPI    = "api"    // deploys, releases, scaling, config changes, rollbacks
)

// Line is one log line of an app's stream.
type Line struct {
	// Time is when the line was produced, with microseconds.
	Time time.Time `json:"time"`
	App  string    `json:"app"`
	Env  string    `json:"env"`
	// Source is SourceApp, SourceHeroku or SourceAPI.
	Source string `json:"source"`
	// Dyno is web.1, run.3, router, build, api, …
	Dyno string `json:"dyno"`
	// Text is the message without its trailing newline.
	Text string `json:"text"`

	// dropReport is the count an L10 line of one drain carries, and dropsSince the
	// first drop it counts: when a full drain buffer evicts such a line, its count goes
	// back into the next report, so that no drop goes unreported.
	dropReport uint64
	dropsSince time.Time
}
