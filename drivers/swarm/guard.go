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
	// maxChainName is iptables' limit on a chain's name.
	maxChainName = 28
)

// guardScript runs on every node with the node's network namespace (host
// networking) and the node's root at /host: it uses the node's own iptables
// (chroot), so the stack image needs none. It makes the instance's chain, which
// lets the router's sources through (RETURN: Docker's own rules decide next) and
// drops the rest, and jumps to it from DOCKER-USER (filter/FORWARD, before Docker's
// rules) for new TCP connections whose original destination port is in the node's
// ephemeral range (where the node picks host-mode ports) and which Docker DNATs to
// $PORT of a container. It rebuilds the chain on start (idempotent), sets the rules
// again if something flushed them, and removes them on SIGTERM, so removing the
// service leaves the node as it was. ip_local_port_range is read with cat: ash's
// read takes one byte per read(2) and /proc/sys ends a file at the first.
const guardScript = `set -u
chain=$MANIFOLD_GUARD_CHAIN
ipt() { chroot /host iptables -w 5 "$@"; }
set -- $(cat /proc/sys/net/ipv4/ip_local_port_range)
ports=$1:$2
match="-p tcp --dport $MANIFOLD_GUARD_PORT -m conntrack --ctstate NEW --ctorigdstport $ports"
remove() {
  while ipt -D DOCKER-USER $match -j "$chain" 2>/dev/null; do :; done
  ipt -F "$chain" 2>/dev/null
  ipt -X "$chain" 2>/dev/null
}
apply() {
  ipt -N DOCKER-USER 2>/dev/null
  ipt -N "$chain" 2>/dev/null || ipt -F "$chain" || return 1
  for s in $MANIFOLD_GUARD_SOURCES; do ipt -A "$chain" -s "$s" -j RETURN || return 1; done
  ipt -A "$chain" -j DROP || return 1
  ipt -C DOCKER-USER $match -j "$chain" 2>/dev/null || ipt -I DOCKER-USER $match -j "$chain"
}
trap 'remove; echo "guard: rules of $chain removed"; exit 0' TERM INT
apply || { echo "guard: cannot set the rules of $chain with the node's iptables" >&2; remove; exit 1; }
echo "guard: $chain drops new connections to ports $ports (container port $MANIFOLD_GUARD_PORT) but from: ${MANIFOLD_GUARD_SOURCES:-the node itself}"
while :; do
  sleep 10 & wait $!
  ipt -C DOCKER-USER $match -j "$chain" 2>/dev/null || { echo "guard: rules of $chain gone, setting them again"; apply; }
done
`

// guardServiceName is the instance's guard service: mf-default-guard.
func guardServiceName(instance string) string { return "mf-" + instance + "-guard" }

// GuardChain is the iptables chain (filter table) of an instance's guard on every
// node, jumped to from DOCKER-USER: MANIFOLD-<instance>, or a digest of the
// instance when that is longer than iptables allows.
func GuardChain(instance string) string {
	name := "MANIFOLD-" + instance
	if len(name) <= maxChainName {
		return name
	}
	sum := sha256.Sum256([]byte(instance))
	return ("MANIFOLD-" + hex.EncodeToString(sum[:]))[:maxChainName]
}

// ParseRouterSources reads MANIFOLD_SWARM_ROUTER_SOURCES: comma-separated IPv4
// addresses or prefixes the dynos' ports accept connections from; "none" turns the
// guard off (noGuard); empty means the default (nil: the slug URL's host).
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
// a router on the node itself connects locally, which the rules never see.
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
		local := true
		for _, a := range addrs {
			a = a.Unmap()
			if a.IsLoopback() || a.IsUnspecified() {
				continue
			}
			local = false
			if a.Is4() {
				sources = append(sources, netip.PrefixFrom(a, 32))
			}
		}
		if !local && len(sources) == 0 {
			return nil, fmt.Errorf("swarm driver: guard: the slug URL's host %q has no IPv4 address and the guard filters IPv4 only (set RouterSources)", host)
		}
	}
	out := make([]netip.Prefix, 0, len(sources))
	for _, p := range sources {
		if !p.IsValid() || !p.Addr().Is4() {
			return nil, fmt.Errorf("swarm driver: guard: router source %s: the guard filters IPv4 only (set RouterSources to the router's IPv4 addresses)", p)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// guardSpec is the global service that keeps the rules on every node that can
// run dynos (those holding the stack image), labelled with its own digest.
func (d *Driver) guardSpec(imageID string, sources []netip.Prefix) (swarm.ServiceSpec, error) {
	words := make([]string, len(sources))
	for i, p := range sources {
		words[i] = p.String()
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
					"MANIFOLD_GUARD_SOURCES=" + strings.Join(words, " "),
				},
				Init:            &initProcess,
				StopSignal:      "SIGTERM",
				StopGracePeriod: &grace,
				// The node's iptables binary and libraries, run with chroot.
				Mounts:        []mount.Mount{{Type: mount.TypeBind, Source: "/", Target: "/host", ReadOnly: true}},
				CapabilityAdd: []string{"CAP_NET_ADMIN", "CAP_NET_RAW"},
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
// when NoGuard is set.
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
	switch {
	case found && existing.Spec.Labels[labelGuardSpec] == want.Labels[labelGuardSpec]:
		d.log.Info("guard adopted", "service", name)
		return nil
	case found:
		if _, err := d.cli.ServiceUpdate(ctx, existing.ID, existing.Version, want, swarm.ServiceUpdateOptions{}); err != nil {
			return fmt.Errorf("swarm driver: guard: update %s: %w", name, err)
		}
	default:
		if _, err := d.cli.ServiceCreate(ctx, want, swarm.ServiceCreateOptions{}); err != nil {
			return fmt.Errorf("swarm driver: guard: create %s: %w", name, err)
		}
	}
	d.log.Info("guard set", "service", name, "chain", GuardChain(d.opts.Instance), "sources", sources)
	return nil
}
