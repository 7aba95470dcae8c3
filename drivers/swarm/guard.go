package swarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"
)

// The guard: host-mode published ports bind every interface of a node, and Swarm's
// PortConfig has no host IP, so the driver keeps one global service per instance
// whose task on every node sets the node's own firewall rules: new TCP connections
// to a dyno's published port are dropped unless they come from the router.

// LabelGuard marks the instance's guard service, which List never reports: it is
// a platform task, not a dyno.
const LabelGuard = "manifold.guard"

// labelGuardSpec is the digest of the guard spec the driver asked for: a driver
// that finds the same digest adopts the service unchanged (no task restarts).
const labelGuardSpec = "manifold.guard.sha256"

const (
	guardStopGrace = 10 * time.Second
	// guardWait bounds how long the first web dyno's start waits for the guard to
	// run on every node; guardRecheck is how long a finding that it does holds.
	guardWait    = 30 * time.Second
	guardRecheck = 30 * time.Second
	// maxChainName is iptables' limit on a chain's name.
	maxChainName = 28
)

// guardScript runs on every node with the node's network namespace (host
// networking) and the node's root at /host: it uses the node's own iptables
// (chroot), so the stack image needs none. Its chain (one per instance, in each
// family's filter table) lets the router's sources through (RETURN: Docker's own
// rules decide next) and drops the rest.
//
// IPv4: Docker DNATs a host-mode port to the task's container in nat/PREROUTING,
// so the connection crosses filter/FORWARD, whose first jump is DOCKER-USER:
// the chain is jumped to from there for new TCP connections DNAT'd to $PORT whose
// original destination port is in the node's ephemeral range (where the node
// picks host-mode ports). The node's own connections (OUTPUT) never cross it.
// IPv6: Docker 20.10 has no ip6tables rules by default, and docker-proxy serves
// the port on [::]: the chain is jumped to from filter/INPUT for new TCP
// connections to the ephemeral range, and lets lo (the node itself) through.
//
// Its health check passes once the rules are set (/tmp/.guard-ready), and Swarm
// reports a task running only once it is healthy: a running guard task is a node
// whose dynos' ports are filtered (awaitGuard).
//
// It rebuilds its chains on start (idempotent), sets the rules again when
// something flushed them, and removes them on SIGTERM, so removing the service
// leaves the node as it was. ip_local_port_range is read with cat: ash's read
// takes one byte per read(2), and /proc/sys ends a file after the first.
const guardScript = `set -u
chain=$MANIFOLD_GUARD_CHAIN
ipt() { chroot /host iptables -w 5 "$@"; }
ip6t() { chroot /host ip6tables -w 5 "$@"; }
set -- $(cat /proc/sys/net/ipv4/ip_local_port_range)
ports=$1:$2
fwd="-p tcp --dport $MANIFOLD_GUARD_PORT -m conntrack --ctstate NEW --ctorigdstport $ports"
in6="-p tcp --dport $ports -m conntrack --ctstate NEW"
v6=no
remove() {
  while ipt -D DOCKER-USER $fwd -j "$chain" 2>/dev/null; do :; done
  ipt -F "$chain" 2>/dev/null; ipt -X "$chain" 2>/dev/null
  while ip6t -D INPUT $in6 -j "$chain" 2>/dev/null; do :; done
  ip6t -F "$chain" 2>/dev/null; ip6t -X "$chain" 2>/dev/null
}
# fill CMD SOURCES [FIRST-RULE]: the chain afresh, the sources pass, the rest drops.
fill() {
  cmd=$1 sources=$2; shift 2
  $cmd -N "$chain" 2>/dev/null || $cmd -F "$chain" || return 1
  [ $# = 0 ] || $cmd -A "$chain" "$@" -j RETURN || return 1
  for s in $sources; do $cmd -A "$chain" -s "$s" -j RETURN || return 1; done
  $cmd -A "$chain" -j DROP
}
apply() {
  ipt -N DOCKER-USER 2>/dev/null
  fill ipt "$MANIFOLD_GUARD_SOURCES" || return 1
  ipt -C DOCKER-USER $fwd -j "$chain" 2>/dev/null || ipt -I DOCKER-USER $fwd -j "$chain" || return 1
  [ -e /proc/net/if_inet6 ] || return 0
  if fill ip6t "$MANIFOLD_GUARD_SOURCES6" -i lo && { ip6t -C INPUT $in6 -j "$chain" 2>/dev/null || ip6t -I INPUT $in6 -j "$chain"; }; then
    v6=yes
  else
    echo "guard: the node has IPv6 but its ip6tables failed: dynos' ports are not filtered over IPv6" >&2
  fi
}
present() {
  ipt -C DOCKER-USER $fwd -j "$chain" 2>/dev/null && { [ $v6 = no ] || ip6t -C INPUT $in6 -j "$chain" 2>/dev/null; }
}
trap 'remove; echo "guard: rules of $chain removed"; exit 0' TERM INT
apply || { echo "guard: cannot set the rules of $chain with the node's iptables" >&2; remove; exit 1; }
: > /tmp/.guard-ready
echo "guard: $chain drops new connections to ports $ports (container port $MANIFOLD_GUARD_PORT; IPv6 filtered: $v6) but from the node and: $MANIFOLD_GUARD_SOURCES $MANIFOLD_GUARD_SOURCES6"
while :; do
  sleep 10 & wait $!
  present || { echo "guard: rules of $chain gone, setting them again"; apply; }
done
`

// guardServiceName is the instance's guard service: mf-default-guard.
func guardServiceName(instance string) string { return "mf-" + instance + "-guard" }

// GuardChain is the chain of an instance's guard in every node's IPv4 and IPv6
// filter tables (jumped to from DOCKER-USER and from INPUT): MANIFOLD-<instance>,
// or a digest of the instance when that is longer than iptables allows.
func GuardChain(instance string) string {
	name := "MANIFOLD-" + instance
	if len(name) <= maxChainName {
		return name
	}
	sum := sha256.Sum256([]byte(instance))
	return ("MANIFOLD-" + hex.EncodeToString(sum[:]))[:maxChainName]
}

// ParseRouterSources reads MANIFOLD_SWARM_ROUTER_SOURCES: comma-separated IPv4 or
// IPv6 addresses or prefixes the dynos' ports accept connections from; "none"
// turns the guard off (noGuard); empty means the default (nil: the slug URL's host).
func ParseRouterSources(s string) (sources []netip.Prefix, noGuard bool, err error) {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return nil, false, nil
	case "none":
		return nil, true, nil
	}
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		var prefix netip.Prefix
		if strings.Contains(field, "/") {
			prefix, err = netip.ParsePrefix(field)
		} else {
			var addr netip.Addr
			addr, err = netip.ParseAddr(field)
			if err == nil && addr.Zone() != "" {
				err = fmt.Errorf("%s: an address with a zone is no source", field)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		if err != nil {
			return nil, false, fmt.Errorf("router sources %q: %w", s, err)
		}
		sources = append(sources, prefix)
	}
	return sources, false, nil
}

// guardSources are the prefixes the guard lets through: Options.RouterSources, or
// the slug URL's host (the address the nodes reach the daemon at, and so the one
// the router's connections come from). A loopback or unspecified host gives none:
// a router on the node itself connects locally, which the rules let through.
func guardSources(ctx context.Context, opts Options) ([]netip.Prefix, error) {
	sources := opts.RouterSources
	if sources == nil {
		u, err := url.Parse(opts.SlugURL)
		if err != nil {
			return nil, fmt.Errorf("swarm driver: guard: slug URL %q: %w", opts.SlugURL, err)
		}
		host := u.Hostname()
		addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		if err != nil {
			return nil, fmt.Errorf("swarm driver: guard: the router's address from the slug URL's host %q: %w (set RouterSources)", host, err)
		}
		for _, a := range addrs {
			a = a.Unmap()
			if !a.IsLoopback() && !a.IsUnspecified() {
				sources = append(sources, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	}
	out := make([]netip.Prefix, 0, len(sources))
	for _, p := range sources {
		if !p.IsValid() || p.Addr().Is4In6() {
			return nil, fmt.Errorf("swarm driver: guard: router source %q: want an IPv4 or IPv6 prefix (an address is /32 or /128)", p)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// guardSpec is the global service that keeps the rules on every node that can
// run dynos (those holding the stack image), labelled with its own digest.
func (d *Driver) guardSpec(imageID string, sources []netip.Prefix) (swarm.ServiceSpec, error) {
	var v4, v6 []string
	for _, p := range sources {
		if p.Addr().Is4() {
			v4 = append(v4, p.String())
		} else {
			v6 = append(v6, p.String())
		}
	}
	labels := map[string]string{LabelInstance: d.opts.Instance, LabelGuard: "true"}
	initProcess := true
	grace := guardStopGrace
	delay := d.opts.RestartDelay
	spec := swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: guardServiceName(d.opts.Instance), Labels: labels},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{
				Image:   imageID,
				Labels:  labels,
				Command: []string{"/bin/sh", "-c", guardScript},
				Env: []string{
					"MANIFOLD_GUARD_CHAIN=" + GuardChain(d.opts.Instance),
					"MANIFOLD_GUARD_PORT=" + strconv.Itoa(containerPort),
					"MANIFOLD_GUARD_SOURCES=" + strings.Join(v4, " "),
					"MANIFOLD_GUARD_SOURCES6=" + strings.Join(v6, " "),
				},
				Init:            &initProcess,
				StopSignal:      "SIGTERM",
				StopGracePeriod: &grace,
				// The node's iptables binary and libraries, run with chroot.
				Mounts:        []mount.Mount{{Type: mount.TypeBind, Source: "/", Target: "/host", ReadOnly: true}},
				CapabilityAdd: []string{"CAP_NET_ADMIN", "CAP_NET_RAW"},
				Healthcheck: &container.HealthConfig{
					Test:     []string{"CMD-SHELL", "test -f /tmp/.guard-ready"},
					Interval: healthInterval, Timeout: healthTimeout, Retries: healthRetries,
					StartPeriod: guardWait,
				},
			},
			// The node's own network namespace: its filter table is the guard's.
			Networks:      []swarm.NetworkAttachmentConfig{{Target: "host"}},
			RestartPolicy: &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionAny, Delay: &delay},
			Placement:     &swarm.Placement{Constraints: []string{"node.labels." + NodeImageLabel(imageID) + "==true"}},
		},
		Mode: swarm.ServiceMode{Global: &swarm.GlobalService{}},
		// Stop-first (Swarm's default): an old task's SIGTERM removes the chain,
		// which must happen before the new task builds it.
		UpdateConfig: &swarm.UpdateConfig{Order: swarm.UpdateOrderStopFirst},
	}
	encoded, err := json.Marshal(spec)
	if err != nil {
		return swarm.ServiceSpec{}, fmt.Errorf("encode guard spec: %w", err)
	}
	sum := sha256.Sum256(encoded)
	spec.Labels[labelGuardSpec] = hex.EncodeToString(sum[:])
	return spec, nil
}

// ensureGuard makes the instance's guard service what the options say: created,
// updated when its spec changed, adopted unchanged when it is the same, removed
// when NoGuard is set. It records the stack image it placed the guard by.
func (d *Driver) ensureGuard(ctx context.Context) error {
	name := guardServiceName(d.opts.Instance)
	existing, _, err := d.cli.ServiceInspectWithRaw(ctx, name, swarm.ServiceInspectOptions{})
	found := err == nil
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("swarm driver: guard: inspect %s: %w", name, err)
	}
	if found && existing.Spec.Labels[LabelGuard] == "" {
		return fmt.Errorf("swarm driver: guard: a service %s exists that is not manifold's guard", name)
	}
	if d.opts.NoGuard {
		if found {
			d.log.Info("guard off (NoGuard): removing the guard service", "service", name)
			if err := d.cli.ServiceRemove(ctx, existing.ID); err != nil {
				return fmt.Errorf("swarm driver: guard: remove %s: %w", name, err)
			}
		}
		return nil
	}
	sources, err := guardSources(ctx, d.opts)
	if err != nil {
		return err
	}
	image, err := d.stackImage(ctx, "")
	if err != nil {
		return fmt.Errorf("swarm driver: guard: %w", err)
	}
	want, err := d.guardSpec(image, sources)
	if err != nil {
		return err
	}
	adopted := found && existing.Spec.Labels[labelGuardSpec] == want.Labels[labelGuardSpec]
	switch {
	case adopted:
		d.log.Info("guard adopted", "service", name)
	case found:
		if _, err := d.cli.ServiceUpdate(ctx, existing.ID, existing.Version, want, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("swarm driver: guard: update %s: %w", name, err)
		}
	default:
		if _, err := d.cli.ServiceCreate(ctx, want, swarm.ServiceCreateOptions{}); err != nil {
			return fmt.Errorf("swarm driver: guard: create %s: %w", name, err)
		}
	}
	d.mu.Lock()
	d.guard.image = image
	d.mu.Unlock()
	if !adopted {
		d.log.Info("guard set", "service", name, "chain", GuardChain(d.opts.Instance), "sources", sources, "image", image)
	}
	return nil
}

// guardState is what the driver knows of the guard: the stack image ID ensureGuard
// placed it by (its constraint is that image's node label), when awaitGuard last
// looked and whether the guard did not run on every node then.
type guardState struct {
	image   string
	seen    time.Time
	missing bool
}

// guardCheck is what awaitGuard does: ensure the guard's spec again, then wait up to
// wait for it on every node (0: the last finding holds).
type guardCheck struct {
	ensure bool
	wait   time.Duration
}

// nextGuardCheck decides awaitGuard's step, given the stack image's ID now. A
// reloaded stack image has a new ID, and so a new node label that the guard's
// constraint does not name: its nodes would get dynos but no guard, so the guard is
// ensured again (an unchanged image gives the same spec digest: no task restarts),
// and waited for afresh. Otherwise a finding holds guardRecheck. After the guard
// failed to come in guardWait a check only looks, even after an image change: a
// node whose guard cannot run must not slow every deploy.
func nextGuardCheck(now time.Time, st guardState, image string) guardCheck {
	switch {
	case image != st.image && st.missing:
		return guardCheck{ensure: true, wait: pollInterval}
	case image != st.image:
		return guardCheck{ensure: true, wait: guardWait}
	case now.Sub(st.seen) < guardRecheck:
		return guardCheck{}
	case st.missing:
		return guardCheck{wait: pollInterval}
	default:
		return guardCheck{wait: guardWait}
	}
}

// awaitGuard returns once the guard runs (its rules set) on every ready node that
// can run dynos, so that a web dyno's published port is never open to anyone but
// the router: a fresh guard takes a few seconds per node. It waits at most
// guardWait, then lets the start go on with a warning naming the nodes (a node
// whose iptables fails must not stop every deploy), and after such a wait only
// looks; a finding holds guardRecheck. When the stack image changed since the
// guard was set, it sets it again first (nextGuardCheck). Calls take turns, so
// that one update of the guard is waited for by all.
func (d *Driver) awaitGuard(ctx context.Context) {
	if d.opts.NoGuard {
		return
	}
	d.guardOps.Lock()
	defer d.guardOps.Unlock()
	image, err := d.stackImage(ctx, "")
	if err != nil {
		d.log.Warn("guard: cannot tell the stack image", "err", err)
		return
	}
	d.mu.Lock()
	step := nextGuardCheck(time.Now(), d.guard, image)
	d.mu.Unlock()
	if step.ensure {
		if err := d.ensureGuard(ctx); err != nil {
			d.log.Warn("guard: the stack image changed, the guard could not follow it", "err", err)
		}
	}
	if step.wait == 0 {
		return
	}
	var unguarded []string
	err = d.poll(ctx, step.wait, func(ctx context.Context) (bool, error) {
		missing, err := d.unguardedNodes(ctx)
		if err != nil {
			return false, nil // the manager briefly away: ask again
		}
		unguarded = missing
		return len(missing) == 0, nil
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	d.guard.seen, d.guard.missing = time.Now(), err != nil
	if err != nil {
		d.log.Warn("the guard does not run on every node: a dyno's port there may be reachable from outside the router",
			"nodes", unguarded, "waited", step.wait, "service", guardServiceName(d.opts.Instance))
	}
}

// unguardedNodes names the ready nodes holding the stack image on which no guard
// task runs.
func (d *Driver) unguardedNodes(ctx context.Context) ([]string, error) {
	image, err := d.stackImage(ctx, "")
	if err != nil {
		return nil, err
	}
	nodes, err := d.cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		return nil, err
	}
	tasks, err := d.cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", guardServiceName(d.opts.Instance)), filters.Arg("desired-state", "running"))})
	if err != nil {
		return nil, err
	}
	guarded := map[string]bool{}
	for _, t := range tasks {
		if t.Status.State == swarm.TaskStateRunning {
			guarded[t.NodeID] = true
		}
	}
	var missing []string
	for _, n := range nodes {
		if n.Status.State != swarm.NodeStateReady || n.Spec.Availability != swarm.NodeAvailabilityActive ||
			n.Spec.Labels[NodeImageLabel(image)] != "true" || guarded[n.ID] {
			continue
		}
		missing = append(missing, n.Description.Hostname+" ("+n.ID+")")
	}
	return missing, nil
}
