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
	iface string
}

// AddOutsider puts an outsider on the cluster's bridge; t.Cleanup removes it.
func (c *Cluster) AddOutsider(t testing.TB) *Outsider {
	t.Helper()
	o := &Outsider{Addr: c.subnet + "99", netns: c.Prefix + "out", iface: c.Prefix + "ov"}
	hostEnd, nsEnd := c.Prefix+"oh", o.iface
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

// LinkLocal is the node's IPv6 link-local address on the bridge as the outsider
// reaches it (fe80::…%iface): the nodes have no other IPv6 address, but the kernel
// gives every interface one, and the outsider is on the same link.
func (o *Outsider) LinkLocal(ctx context.Context, n *Node) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "-n", n.Name, "-6", "-o", "addr", "show", "dev", n.iface, "scope", "link").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("link-local address of %s: %w: %s", n.Name, err, out)
	}
	fields := strings.Fields(string(out))
	for i, f := range fields {
		if f == "inet6" && i+1 < len(fields) {
			addr, _, _ := strings.Cut(fields[i+1], "/")
			return addr + "%" + o.iface, nil
		}
	}
	return "", fmt.Errorf("no link-local address on %s of %s: %s", n.iface, n.Name, out)
}

// Rules is the node's IPv4 and IPv6 filter tables as `iptables -S` and
// `ip6tables -S` print them in its namespace.
func (n *Node) Rules(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	var rules strings.Builder
	for _, tool := range []string{"iptables", "ip6tables"} {
		out, err := exec.CommandContext(ctx, "nsenter", "--net=/run/netns/"+n.Name, tool, "-S").CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("%s -S in %s: %w: %s", tool, n.Name, err, out)
		}
		rules.WriteString("# " + tool + "\n")
		rules.Write(out)
	}
	return rules.String(), nil
}
