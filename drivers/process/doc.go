// Package process is manifold's embedded default driver: it runs each dyno as a plain
// process group from its release's unpacked slug, follows the dyno's output from a file
// so the dyno outlives the daemon, restarts crashed dynos with Heroku's cool-off,
// enforces each dyno's memory quota by sampling its process group (R14, R15), and
// adopts the dynos it left running when the daemon starts again.
//
// Files under Options.StateDir, per dyno (ID is app.env.type.index.random):
//
//	<id>.json  the state file: spec, pid, process start time, port, log offset, state
//	<id>.log   the dyno's stdout and stderr (O_APPEND), followed line by line
//
// Unpacked slugs are shared by every dyno of a slug under Options.SlugDir/<key>/.
package process
