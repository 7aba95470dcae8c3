// Package swarmtest starts a real multi-node Docker Swarm on one machine for tests:
// extra dockerd daemons, each in its own network namespace on a bridge it makes,
// joined into one swarm, with the stack image loaded; t.Cleanup removes it all.
package swarmtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Deadlines of the harness's waits.
const (
	daemonReadyTimeout = 60 * time.Second
	nodesReadyTimeout  = 60 * time.Second
	stopTimeout        = 30 * time.Second
	commandTimeout     = 30 * time.Second
	pollInterval       = 100 * time.Millisecond
)

// containerdSocket is the host engine's containerd, which every extra daemon shares
// under a namespace of its own.
const containerdSocket = "/var/run/docker/containerd/containerd.sock"

// Cluster is a swarm of extra daemons; Nodes[0] is the manager.
type Cluster struct {
	// Prefix names every interface, namespace and directory of the cluster.
	Prefix string
	// Subnet's host address: the harness's end of the bridge (10.213.X.1), where
	// the nodes reach the test process.
	HostAddr string
	// ImageID is the stack image's ID on every node.
	ImageID string
	Nodes   []*Node
	// standalone are the daemons of AddStandalone, in no swarm.
	standalone []*Node
	bridge     string
	subnet     string // "10.213.X."
	dir        string
}

// Node is one extra daemon of a Cluster.
type Node struct {
	// Name is the network namespace and containerd namespace: mfsab12n1.
	Name string
	// Addr is the node's address on the bridge (10.213.X.11).
	Addr string
	// Host is the daemon's socket: unix:///tmp/mfs…/n1/docker.sock.
	Host string
	// Client talks to the daemon.
	Client *client.Client
	// ID is the node's swarm node ID.
	ID string

	dir     string
	hostEnd string // the host's end of its veth pair
	iface   string // the node's end of its veth pair
	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd exits
}

// Manager is the swarm manager's node.
func (c *Cluster) Manager() *Node { return c.Nodes[0] }

// Start makes a swarm of n (1 to 3) nodes with image (as named on the host's
// engine) loaded into each node and the label nodeLabel(image ID)=true set on every
// node. It fails the test when it cannot; with CI unset the caller may skip first on
// Available.
func Start(t testing.TB, n int, image string, nodeLabel func(imageID string) string) *Cluster {
	t.Helper()
	if n < 1 || n > 3 {
		t.Fatalf("swarmtest: %d nodes: want 1 to 3", n)
	}
	if problem := Available(); problem != "" {
		t.Fatalf("swarmtest: cannot start a swarm here: %s", problem)
	}
	c := &Cluster{Prefix: "mfs" + randomHex(2)}
	c.bridge = c.Prefix + "br"
	t.Cleanup(func() { c.cleanup(t) })

	octet, err := freeOctet()
	if err != nil {
		t.Fatalf("swarmtest: %v", err)
	}
	subnet := "10.213." + strconv.Itoa(octet) + "."
	c.HostAddr = subnet + "1"
	c.dir, err = os.MkdirTemp("", c.Prefix)
	if err != nil {
		t.Fatalf("swarmtest: %v", err)
	}
	mustRun(t, "ip", "link", "add", c.bridge, "type", "bridge")
	mustRun(t, "ip", "addr", "add", c.HostAddr+"/24", "dev", c.bridge)
	mustRun(t, "ip", "link", "set", c.bridge, "up")
	// The host bridges its netfilter (bridge-nf-call-iptables) and the engine's
	// FORWARD policy is DROP: let the nodes talk to each other over the bridge.
	mustRun(t, "iptables", "-I", "FORWARD", "-i", c.bridge, "-o", c.bridge, "-j", "ACCEPT")

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	host, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("swarmtest: host engine: %v", err)
	}
	defer host.Close()
	inspect, err := host.ImageInspect(ctx, image)
	if err != nil {
		t.Fatalf("swarmtest: image %s on the host engine: %v (make stack-image)", image, err)
	}
	c.ImageID = inspect.ID

	c.subnet = subnet
	for i := 1; i <= n; i++ {
		node, err := c.addNode(t, i)
		c.Nodes = append(c.Nodes, node)
		if err != nil {
			t.Fatalf("swarmtest: node %d: %v", i, err)
		}
		if err := node.waitReady(ctx); err != nil {
			t.Fatalf("swarmtest: %s: %v; its log:\n%s", node.Name, err, node.logTail())
		}
		if err := loadImage(ctx, host, node.Client, image); err != nil {
			t.Fatalf("swarmtest: load %s into %s: %v", image, node.Name, err)
		}
	}
	if err := c.join(ctx); err != nil {
		t.Fatalf("swarmtest: %v", err)
	}
	for _, node := range c.Nodes {
		if err := c.LabelNode(ctx, node, nodeLabel(c.ImageID), "true"); err != nil {
			t.Fatalf("swarmtest: %v", err)
		}
	}
	return c
}

// Available says why extra daemons cannot run here, or "" when they can.
func Available() string {
	if os.Geteuid() != 0 {
		return "not root"
	}
	for _, tool := range []string{"dockerd", "nsenter", "ip", "iptables"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found"
		}
	}
	if _, err := os.Stat(containerdSocket); err != nil {
		return "the engine's containerd is not at " + containerdSocket
	}
	return ""
}

// AddStandalone starts one more daemon on the cluster's bridge that joins no swarm
// (its swarm state is "inactive") and has no image loaded: an engine to point a
// swarm client at by mistake. The cluster's cleanup removes it.
func (c *Cluster) AddStandalone(t testing.TB) *Node {
	t.Helper()
	i := len(c.Nodes) + len(c.standalone) + 1
	node, err := c.addNode(t, i)
	c.standalone = append(c.standalone, node)
	if err != nil {
		t.Fatalf("swarmtest: standalone node %d: %v", i, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), daemonReadyTimeout)
	defer cancel()
	if err := node.waitReady(ctx); err != nil {
		t.Fatalf("swarmtest: %s: %v; its log:\n%s", node.Name, err, node.logTail())
	}
	return node
}

// addNode starts the i-th daemon (its address 10.213.X.(10+i)); the caller keeps the
// node, even on error, so that cleanup removes what was made.
func (c *Cluster) addNode(t testing.TB, i int) (*Node, error) {
	t.Helper()
	addr := c.subnet + strconv.Itoa(10+i)
	node := &Node{Name: c.Prefix + "n" + strconv.Itoa(i), Addr: addr, dir: filepath.Join(c.dir, "n"+strconv.Itoa(i))}
	node.Host = "unix://" + filepath.Join(node.dir, "docker.sock")
	node.hostEnd = c.Prefix + "h" + strconv.Itoa(i)
	hostEnd, nsEnd := node.hostEnd, c.Prefix+"v"+strconv.Itoa(i)
	node.iface = nsEnd
	for _, args := range [][]string{
		{"netns", "add", node.Name},
		{"link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd},
		{"link", "set", hostEnd, "master", c.bridge},
		{"link", "set", hostEnd, "up"},
		{"link", "set", nsEnd, "netns", node.Name},
		{"-n", node.Name, "addr", "add", addr + "/24", "dev", nsEnd},
		{"-n", node.Name, "link", "set", nsEnd, "up"},
		{"-n", node.Name, "link", "set", "lo", "up"},
		// No default route: the nodes reach each other and the test process
		// (HostAddr) on the bridge's subnet and nothing else.
	} {
		if err := run("ip", args...); err != nil {
			return nil, err
		}
	}
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(node.dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	if err := os.WriteFile(filepath.Join(node.dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		return nil, err
	}
	if err := node.Start(); err != nil {
		return nil, err
	}
	cli, err := client.NewClientWithOpts(client.WithHost(node.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	node.Client = cli
	return node, nil
}

// Start starts the node's daemon (again, after Kill: it keeps its data root and so
// its swarm membership). It returns once the process runs; WaitReady waits for it.
func (n *Node) Start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.done:
		default:
			return fmt.Errorf("%s: daemon already running", n.Name)
		}
	}
	logFile, err := os.OpenFile(filepath.Join(n.dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	// nsenter --net, not `ip netns exec`: the latter remounts /sys and hides the
	// cgroup mounts dockerd needs.
	cmd := exec.Command("nsenter", "--net=/run/netns/"+n.Name, "dockerd",
		"--config-file", filepath.Join(n.dir, "daemon.json"),
		"--data-root", filepath.Join(n.dir, "data"),
		"--exec-root", filepath.Join(n.dir, "exec"),
		"--pidfile", filepath.Join(n.dir, "docker.pid"),
		"-H", n.Host,
		"--containerd", containerdSocket,
		"--containerd-namespace", n.Name,
		"--containerd-plugins-namespace", n.Name+"p",
		"--storage-driver", "vfs",
		"--bip", "172.31.250.1/24")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start dockerd of %s: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		logFile.Close()
		close(done)
	}()
	n.cmd, n.done = cmd, done
	return nil
}

// Kill kills the node's daemon with SIGKILL (its pid, nothing else) and waits until
// it is gone. Its tasks' containers stay in containerd until it starts again.
func (n *Node) Kill() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	// nsenter execs dockerd, so the pid is dockerd's.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(stopTimeout):
		return fmt.Errorf("%s: dockerd did not die within %s of SIGKILL", n.Name, stopTimeout)
	}
}

// Pid is the daemon's process id (0 when it never started).
func (n *Node) Pid() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return 0
	}
	return n.cmd.Process.Pid
}

// WaitReady waits until the daemon answers, within the harness's deadline.
func (n *Node) WaitReady(ctx context.Context) error { return n.waitReady(ctx) }

func (n *Node) waitReady(ctx context.Context) error {
	return poll(ctx, daemonReadyTimeout, func(ctx context.Context) (bool, error) {
		select {
		case <-n.done:
			return false, errors.New("dockerd exited")
		default:
		}
		_, err := n.Client.Ping(ctx)
		return err == nil, nil
	})
}

func (n *Node) logTail() string {
	b, _ := os.ReadFile(filepath.Join(n.dir, "dockerd.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// join makes Nodes[0] the manager and the others workers, and waits until every
// node is ready.
func (c *Cluster) join(ctx context.Context) error {
	mgr := c.Manager()
	if _, err := mgr.Client.SwarmInit(ctx, swarm.InitRequest{ListenAddr: mgr.Addr + ":2377", AdvertiseAddr: mgr.Addr}); err != nil {
		return fmt.Errorf("swarm init on %s: %w", mgr.Name, err)
	}
	sw, err := mgr.Client.SwarmInspect(ctx)
	if err != nil {
		return fmt.Errorf("swarm inspect: %w", err)
	}
	for _, node := range c.Nodes[1:] {
		if err := node.Client.SwarmJoin(ctx, swarm.JoinRequest{
			ListenAddr: node.Addr + ":2377", AdvertiseAddr: node.Addr,
			RemoteAddrs: []string{mgr.Addr + ":2377"}, JoinToken: sw.JoinTokens.Worker,
		}); err != nil {
			return fmt.Errorf("swarm join of %s: %w", node.Name, err)
		}
	}
	for _, node := range c.Nodes {
		info, err := node.Client.Info(ctx)
		if err != nil {
			return fmt.Errorf("info of %s: %w", node.Name, err)
		}
		node.ID = info.Swarm.NodeID
	}
	return poll(ctx, nodesReadyTimeout, func(ctx context.Context) (bool, error) {
		nodes, err := mgr.Client.NodeList(ctx, swarm.NodeListOptions{})
		if err != nil {
			return false, nil
		}
		ready := 0
		for _, n := range nodes {
			if n.Status.State == swarm.NodeStateReady {
				ready++
			}
		}
		return ready == len(c.Nodes), nil
	})
}

// LabelNode sets a node label through the manager.
func (c *Cluster) LabelNode(ctx context.Context, node *Node, key, value string) error {
	mgr := c.Manager().Client
	n, _, err := mgr.NodeInspectWithRaw(ctx, node.ID)
	if err != nil {
		return fmt.Errorf("inspect node %s: %w", node.Name, err)
	}
	spec := n.Spec
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Labels[key] = value
	if err := mgr.NodeUpdate(ctx, node.ID, n.Version, spec); err != nil {
		return fmt.Errorf("label node %s: %w", node.Name, err)
	}
	return nil
}

// NodeByID is the cluster's node with that swarm node ID, or nil.
func (c *Cluster) NodeByID(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// loadImage copies an image from the host's engine into a node's: docker save |
// docker load, so it keeps its ID and no node ever pulls.
func loadImage(ctx context.Context, from, to *client.Client, image string) error {
	rc, err := from.ImageSave(ctx, []string{image})
	if err != nil {
		return err
	}
	defer rc.Close()
	resp, err := to.ImageLoad(ctx, rc)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// cleanup removes every service, leaves the swarm, stops the daemons by pid, and
// deletes the containerd namespaces, netns, veths, bridge, rule and directories.
// What it cannot remove fails the test.
func (c *Cluster) cleanup(t testing.TB) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if len(c.Nodes) > 0 && c.Nodes[0].Client != nil {
		if services, err := c.Manager().Client.ServiceList(ctx, swarm.ServiceListOptions{}); err == nil {
			for _, s := range services {
				_ = c.Manager().Client.ServiceRemove(ctx, s.ID)
			}
		}
	}
	all := append(slices.Clone(c.Nodes), c.standalone...)
	for i := len(all) - 1; i >= 0; i-- {
		node := all[i]
		if node.Client != nil {
			_ = node.Client.SwarmLeave(ctx, true)
		}
		if err := node.stop(); err != nil {
			t.Errorf("swarmtest cleanup: %v", err)
		}
		if node.Client != nil {
			node.Client.Close()
		}
		for _, ns := range []string{node.Name, node.Name + "p"} {
			if err := removeContainerdNamespace(ns); err != nil {
				t.Errorf("swarmtest cleanup: containerd namespace %s: %v", ns, err)
			}
		}
		_ = run("ip", "link", "del", node.hostEnd)
		if err := run("ip", "netns", "del", node.Name); err != nil {
			t.Errorf("swarmtest cleanup: %v", err)
		}
	}
	_ = run("iptables", "-D", "FORWARD", "-i", c.bridge, "-o", c.bridge, "-j", "ACCEPT")
	_ = run("ip", "link", "del", c.bridge)
	if c.dir != "" {
		unmountBelow(c.dir)
		if err := os.RemoveAll(c.dir); err != nil {
			t.Errorf("swarmtest cleanup: %v", err)
		}
	}
	if out, _ := exec.Command("ip", "-o", "link", "show").Output(); strings.Contains(string(out), c.Prefix) {
		t.Errorf("swarmtest cleanup: links of %s left:\n%s", c.Prefix, out)
	}
}

// stop ends a daemon with SIGTERM (it stops its containers), SIGKILL after the grace.
func (n *Node) stop() error {
	n.mu.Lock()
	cmd, done := n.cmd, n.done
	n.mu.Unlock()
	if cmd == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		return nil
	case <-time.After(stopTimeout):
	}
	return n.Kill()
}

// removeContainerdNamespace kills and deletes what a stopped daemon left in its
// containerd namespace (tasks of a killed daemon), then the namespace.
func removeContainerdNamespace(ns string) error {
	ctr := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, "ctr", append([]string{"-a", containerdSocket, "-n", ns}, args...)...).CombinedOutput()
		return string(out), err
	}
	if _, err := exec.LookPath("ctr"); err != nil {
		return nil // nothing to clean with; dockerd removed its containers on SIGTERM
	}
	if out, err := ctr("namespaces", "ls", "-q"); err != nil || !strings.Contains("\n"+out, "\n"+ns+"\n") {
		return nil
	}
	out, _ := ctr("containers", "ls", "-q")
	for _, id := range strings.Fields(out) {
		_, _ = ctr("tasks", "kill", "-s", "SIGKILL", id)
		_, _ = ctr("tasks", "rm", "-f", id)
		_, _ = ctr("containers", "rm", id)
	}
	if out, err := ctr("namespaces", "rm", ns); err != nil {
		return fmt.Errorf("%v: %s", err, out)
	}
	return nil
}

// freeOctet picks X for a 10.213.X.0/24 no interface of the host uses.
func freeOctet() (int, error) {
	out, err := exec.Command("ip", "-o", "addr", "show").Output()
	if err != nil {
		return 0, err
	}
	b := make([]byte, 1)
	for range 50 {
		_, _ = rand.Read(b)
		x := 1 + int(b[0])%250
		if !strings.Contains(string(out), "10.213."+strconv.Itoa(x)+".") {
			return x, nil
		}
	}
	return 0, errors.New("no free 10.213.X.0/24")
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func mustRun(t testing.TB, name string, args ...string) {
	t.Helper()
	if err := run(name, args...); err != nil {
		t.Fatalf("swarmtest: %v", err)
	}
}

// Poll calls check until it reports done, fails, or timeout passes: the package's
// one polling helper, also used by the tests of the swarm driver.
func Poll(ctx context.Context, timeout time.Duration, check func(ctx context.Context) (bool, error)) error {
	return poll(ctx, timeout, check)
}

func poll(ctx context.Context, timeout time.Duration, check func(ctx context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		done, err := check(ctx)
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not done within %s: %w", timeout, ctx.Err())
		case <-tick.C:
		}
	}
}
