package swarmtest

import (
	"os"
	"sort"
	"strings"
	"syscall"
)

// unmountBelow detaches what the daemons left mounted under dir (the network
// namespaces of swarm's ingress and overlay sandboxes), deepest first.
func unmountBelow(dir string) {
	raw, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			points = append(points, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = syscall.Unmount(p, syscall.MNT_DETACH)
	}
}
