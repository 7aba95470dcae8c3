// Package process is manifold's embedded default driver: it runs each dyno as a plain
// process group of this host from its release's unpacked slug, with its output in a file
// so the dyno outlives the daemon. Heroku's dyno manager on top is drivers/supervisor.
//
// The driver starts, signals, waits for (pidfd) and measures (/proc) the process groups
// for the supervisor, follows their output, and adopts the dynos it left running when
// the daemon starts again. It needs Linux.
//
// Files under Options.StateDir, per dyno (ID is app.env.type.index.random):
//
//	<id>.json  the state file: spec, pid, process start time, port, log offset, state
//	<id>.log   the dyno's stdout and stderr (O_APPEND), followed line by line
//
// Unpacked slugs are shared by every dyno of a slug under Options.SlugDir/<key>/.
package process
