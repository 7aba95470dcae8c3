package swarmtest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Outsider is a host on the cluster's bridge that is neither a node nor the test
// process (whose address, HostAddr, is where the daemon and router sit): a network
// namespace with an address of its own, to test what the rest of a network
// reaches on the nodes.
type Outsider struct {
	// Addr is the outsider's address on the bridge (10.213.X.99).
	Addr  string
	netns string
}

// AddOutsider puts an outsider on the cluster's bridge; t.Cleanup removes it.
func (c *Cluster) AddOutsider(t testing.TB) *Outsider {
	t.Helper()
	o := &Outsider{Addr: strings.TrimSuffix(c.HostAddr, "1") + "99", netns: c.Prefix + "out"}
	hostEnd, nsEnd := c.Prefix+"oh", c.Prefix+"ov"
	t.Cleanup(func() {
		_ = run("ip", "link", "del", hostEnd)
		if err := run("ip", "netns", "del", o.netns); err != nil {
			t.Errorf("swarmtest: outsider: %v", err)
		}
	})
	for _, args := range [][]string{
		{"netns", "add", o.netns},
		{"link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd},
		{"link", "set", hostEnd, "master", c.bridge},
		{"link", "set", hostEnd, "up"},
		{"link", "set", nsEnd, "netns", o.netns},
		{"-n", o.netns, "addr", "add", o.Addr + "/24", "dev", nsEnd},
		{"-n", o.netns, "link", "set", nsEnd, "up"},
		{"-n", o.netns, "link", "set", "lo", "up"},
	} {
		mustRun(t, "ip", args...)
	}
	return o
}

// Dial connects from the outsider to addr (host:port) and closes the connection:
// nil when it could connect within timeout.
func (o *Outsider) Dial(addr string, timeout time.Duration) error {
	return dialIn("/run/netns/"+o.netns, addr, timeout)
}

// Rules is the node's filter table as `iptables -S` prints it in its namespace.
func (n *Node) Rules(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+n.Name, "iptables", "-S").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("iptables -S in %s: %w: %s", n.Name, err, out)
	}
	return string(out), nil
}
