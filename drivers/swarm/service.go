package swarm

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
)

// Labels of every service (and of its tasks' containers). The spec label holds the
// JSON DynoSpec without its config (the config is the service's environment, never a
// label), so List and adoption need nothing but the manager.
const (
	LabelApp      = "manifold.app"
	LabelEnv      = "manifold.env"
	LabelRelease  = "manifold.release"
	LabelProcess  = "manifold.process"
	LabelInstance = "manifold.instance"
	LabelSlug     = "manifold.slug.sha256"
	LabelSpec     = "manifold.spec"
	// LabelOneOff marks one-off services (run.N), which List never reports.
	LabelOneOff = "manifold.oneoff"
)

// containerPort is $PORT inside every task; the node publishes it in host mode on a
// port it picks, which the task's status tells.
const containerPort = 5000

// slugCache is where each node keeps the slugs its tasks fetched: a named volume per
// node, so the second task of a slug on a node does not fetch it again.
const (
	slugCacheVolume = "manifold-slugs"
	slugCacheDir    = "/var/cache/manifold-slugs"
)

// Exit codes of the slug fetch, which the driver words as the dyno's reason.
const (
	exitFetchFailed   = 197
	exitSlugMismatch  = 198
	defaultStopGrace  = 30 * time.Second
	healthInterval    = time.Second
	healthTimeout     = 2 * time.Second
	healthRetries     = 3
	updateMonitorTime = 5 * time.Second
)

// fetchSlug boots a task's slug as a Heroku dyno does: fetched once per node from
// the daemon's slug server (exit 197 when it cannot be, 198 when its sha256 is not
// the one asked for), unpacked at /app, .profile.d sourced. Both boot scripts
// begin with it.
const fetchSlug = `f=` + slugCacheDir + `/$MANIFOLD_SLUG_SHA256.tgz
if [ ! -f "$f" ]; then
  mkdir -p ` + slugCacheDir + `
  wget -q -O "$f.$$" "$MANIFOLD_SLUG_URL" || { echo "slug fetch from $MANIFOLD_SLUG_URL failed" >&2; rm -f "$f.$$"; exit 197; }
  echo "$MANIFOLD_SLUG_SHA256  $f.$$" | sha256sum -c -s || { echo "slug checksum mismatch" >&2; rm -f "$f.$$"; exit 198; }
  mv "$f.$$" "$f"
fi
mkdir -p /app
tar -xzf "$f" -C /app
cd /app
for p in /app/.profile.d/*.sh; do [ -r "$p" ] && . "$p"; done
`

// bootScript fetches the slug once per node (checked against its sha256), unpacks it
// at /app, sources .profile.d and runs the command, the way a Heroku dyno boots. On
// SIGTERM it waits MANIFOLD_DRAIN_SECONDS before passing it on, so that the router
// has dropped a web task (it lists tasks every RelistInterval) before its process
// stops taking requests; the stop grace is longer by as much. It begins with
// stampOutput (logstream.go), which numbers the lines of long-running services.
//
// A dyno with a memory quota also samples its memory for R14 (memory.go): its first
// line is the nonce (numbered 1), the sampler starts before the app.
const bootScript = stampOutput + `set -e
` + memoryAnnounce + fetchSlug + `set +e
` + memorySampler + `drain=$MANIFOLD_DRAIN_SECONDS
unset MANIFOLD_SLUG_URL MANIFOLD_SLUG_SHA256 MANIFOLD_DRAIN_SECONDS
/bin/sh -c "$MANIFOLD_COMMAND" &
child=$!
trap 'sleep $drain; kill -TERM $child 2>/dev/null' TERM
wait $child
status=$?
while kill -0 $child 2>/dev/null; do wait $child; status=$?; done
exit $status
`

// serviceName is the service of a process type: mf-default-hello-production-web.
func serviceName(instance string, spec drivers.DynoSpec) string {
	return "mf-" + instance + "-" + spec.App + "-" + spec.Env + "-" + spec.Type
}

// dynoID is a dyno's handle: its service, release and slot. The release is in it so
// that the old web.1 of a rolling update and the new one are two dynos, as on the
// other drivers.
func dynoID(service string, release, slot int) string {
	return service + "/v" + strconv.Itoa(release) + "/" + strconv.Itoa(slot)
}

// parseDynoID splits a dynoID.
func parseDynoID(id string) (service string, release, slot int, ok bool) {
	parts := strings.Split(id, "/")
	if len(parts) != 3 || !strings.HasPrefix(parts[1], "v") {
		return "", 0, 0, false
	}
	release, err1 := strconv.Atoi(parts[1][1:])
	slot, err2 := strconv.Atoi(parts[2])
	if err1 != nil || err2 != nil {
		return "", 0, 0, false
	}
	return parts[0], release, slot, true
}

// NodeImageLabel is the node label saying a node holds the stack image with this ID
// (loaded with docker save | docker load): services are constrained to it, so no
// task is ever placed where it would have to pull.
func NodeImageLabel(imageID string) string {
	hex := strings.TrimPrefix(imageID, "sha256:")
	if len(hex) > 12 {
		hex = hex[:12]
	}
	return "manifold.image." + hex
}

// template is what every task of a process type shares: the spec without Index.
type template struct {
	spec    drivers.DynoSpec // Index 0, Stack the image ID
	slugSHA string
	slugURL string
}

// labels are the service's and its containers' labels.
func (d *Driver) labels(t template, oneOff bool) (map[string]string, error) {
	spec := t.spec
	spec.Config = nil
	spec.Index = 0
	encoded, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("encode spec of %s: %w", t.spec.Ref(), err)
	}
	labels := map[string]string{
		LabelApp:      spec.App,
		LabelEnv:      spec.Env,
		LabelRelease:  strconv.Itoa(spec.Release),
		LabelProcess:  spec.Type,
		LabelInstance: d.opts.Instance,
		LabelSlug:     t.slugSHA,
		LabelSpec:     string(encoded),
	}
	if oneOff {
		labels[LabelOneOff] = "true"
	}
	return labels, nil
}

// serviceSpec is the Swarm service of a process type with replicas tasks; a one-off
// (oneOff set) runs once with no restart and publishes no port.
func (d *Driver) serviceSpec(name string, t template, replicas uint64, oneOff bool) (swarm.ServiceSpec, error) {
	labels, err := d.labels(t, oneOff)
	if err != nil {
		return swarm.ServiceSpec{}, err
	}
	spec := t.spec
	drain := time.Duration(0)
	if spec.Type == "web" && !oneOff {
		drain = d.drainDelay()
	}
	env := make([]string, 0, len(spec.Config)+8)
	for _, k := range slices.Sorted(maps.Keys(spec.Config)) {
		env = append(env, k+"="+spec.Config[k])
	}
	dyno := spec.Type + ".{{.Task.Slot}}" // Swarm fills in the slot: web.1, web.2
	if oneOff {
		dyno = spec.Name()
	}
	env = append(env,
		"PORT="+strconv.Itoa(containerPort),
		"DYNO="+dyno, "PS="+dyno, "HOME=/app",
		"MANIFOLD_COMMAND="+spec.Command,
		"MANIFOLD_SLUG_URL="+t.slugURL,
		"MANIFOLD_SLUG_SHA256="+t.slugSHA,
		"MANIFOLD_DRAIN_SECONDS="+strconv.FormatFloat(drain.Seconds(), 'f', -1, 64),
	)
	if !oneOff {
		env = append(env, "MANIFOLD_LOG_STAMP=1") // see stampOutput
	}
	if spec.MemoryBytes > 0 && !oneOff {
		env = append(env, d.memoryEnv(spec.MemoryBytes)...)
	}
	grace := spec.StopTimeout
	if grace <= 0 {
		grace = defaultStopGrace
	}
	grace += drain
	initProcess := true
	cs := &swarm.ContainerSpec{
		Image:           spec.Stack,
		Labels:          labels,
		Command:         []string{"/bin/sh", "-c", bootScript},
		Env:             env,
		Init:            &initProcess,
		StopSignal:      "SIGTERM",
		StopGracePeriod: &grace,
		Mounts:          []mount.Mount{{Type: mount.TypeVolume, Source: slugCacheVolume, Target: slugCacheDir}},
	}
	restart := swarm.RestartPolicyConditionOnFailure
	delay := d.opts.RestartDelay
	ts := swarm.TaskSpec{
		ContainerSpec: cs,
		RestartPolicy: &swarm.RestartPolicy{Condition: restart, Delay: &delay},
		Placement: &swarm.Placement{
			Constraints: []string{"node.labels." + NodeImageLabel(spec.Stack) + "==true"},
			Preferences: []swarm.PlacementPreference{{Spread: &swarm.SpreadOver{SpreadDescriptor: "node.id"}}},
		},
		Resources: &swarm.ResourceRequirements{Limits: &swarm.Limit{}, Reservations: &swarm.Resources{}},
		LogDriver: d.logDriver(),
	}
	if spec.MemoryBytes > 0 {
		// Placed by the quota; killed by the kernel past the hard limit (R15), and
		// sampled for R14 in between (memory.go), as Heroku does.
		ts.Resources.Limits.MemoryBytes = d.hardLimit(spec.MemoryBytes)
		ts.Resources.Reservations.MemoryBytes = spec.MemoryBytes
	}
	if spec.CPUShares > 0 {
		// Swarm has no CPU shares: a share of 1024 is a limit of one CPU.
		ts.Resources.Limits.NanoCPUs = spec.CPUShares * 1e9 / 1024
	}
	out := swarm.ServiceSpec{
		Annotations:  swarm.Annotations{Name: name, Labels: labels},
		TaskTemplate: ts,
		Mode:         swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
	}
	if oneOff {
		out.TaskTemplate.RestartPolicy = &swarm.RestartPolicy{Condition: swarm.RestartPolicyConditionNone}
		return out, nil
	}
	out.UpdateConfig = &swarm.UpdateConfig{
		Parallelism: 1, Order: swarm.UpdateOrderStartFirst,
		FailureAction: swarm.UpdateFailureActionRollback, Monitor: updateMonitorTime,
	}
	out.RollbackConfig = &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst, FailureAction: swarm.UpdateFailureActionPause}
	if spec.Type == "web" {
		out.EndpointSpec = &swarm.EndpointSpec{Ports: []swarm.PortConfig{{
			Protocol: swarm.PortConfigProtocolTCP, TargetPort: containerPort, PublishMode: swarm.PortConfigPublishModeHost,
		}}}
		// Swarm marks a task running only once it is healthy, so an update's
		// start-first waits for it, and the router only learns of it then.
		cs.Healthcheck = &container.HealthConfig{
			Test:        []string{"CMD-SHELL", healthCommand(spec.HealthCheck)},
			Interval:    healthInterval,
			Timeout:     healthTimeout,
			Retries:     healthRetries,
			StartPeriod: d.opts.BootTimeout,
		}
	}
	return out, nil
}

// drainDelay is how long a stopping web task keeps serving: two listings, so that
// the router has dropped it first.
func (d *Driver) drainDelay() time.Duration {
	return (2*d.opts.RelistInterval + time.Second - 1) / time.Second * time.Second
}

// healthCommand checks that $PORT is bound, and with a health check path that it
// answers 2xx.
func healthCommand(path string) string {
	if path == "" {
		return `netstat -ltn | grep -q ":$PORT "`
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	return `wget -q -O /dev/null "http://127.0.0.1:$PORT` + path + `"`
}

// specOf decodes the DynoSpec of a service (Index 0) with its config from the
// environment.
func specOf(s swarm.ServiceSpec) (drivers.DynoSpec, error) {
	var spec drivers.DynoSpec
	raw, ok := s.Labels[LabelSpec]
	if !ok {
		return spec, fmt.Errorf("service %s: label %s missing", s.Name, LabelSpec)
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return spec, fmt.Errorf("service %s: label %s: %w", s.Name, LabelSpec, err)
	}
	if cs := s.TaskTemplate.ContainerSpec; cs != nil {
		spec.Config = configFromEnv(cs.Env)
	}
	return spec, nil
}

// configFromEnv is the app's config: the environment without what the driver adds.
func configFromEnv(env []string) map[string]string {
	config := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case k == "PORT" || k == "DYNO" || k == "PS" || k == "HOME", strings.HasPrefix(k, "MANIFOLD_"):
			continue
		}
		config[k] = v
	}
	return config
}
