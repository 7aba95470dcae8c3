//go:build race

package router

// raceEnabled: the race detector slows each request about eightfold.
const raceEnabled = true
