//go:build !linux

package swarmtest

// unmountBelow does nothing where extra daemons do not run (Available says why).
func unmountBelow(string) {}
