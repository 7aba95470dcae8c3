// Package supervisor is Heroku's dyno manager, written once for every driver: it moves
// a dyno through starting, up, crashed and down, restarts crashes after the cool-off,
// kills what does not boot (R10), outgrows its memory (R14, R15) or ignores SIGTERM
// (R12), and queues the state changes that Driver.Events delivers. The drivers only
// start, stop, watch and inspect (Runtime, Process).
package supervisor
