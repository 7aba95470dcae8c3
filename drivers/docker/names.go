package docker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/manifold-paas/manifold/drivers"
)

// Labels every container and network of the driver carries. The spec label holds the
// JSON DynoSpec, so List and adoption need nothing but the engine.
const (
	LabelApp      = "manifold.app"
	LabelEnv      = "manifold.env"
	LabelRelease  = "manifold.release"
	LabelProcess  = "manifold.process"
	LabelDyno     = "manifold.dyno"
	LabelSlug     = "manifold.slug"
	LabelInstance = "manifold.instance"
	LabelSpec     = "manifold.spec"
	// LabelOneOff marks one-off (run.N) containers, which List never reports.
	LabelOneOff = "manifold.oneoff"
	// LabelConfigDigest is a digest of the dyno's config and sealed secrets: the spec
	// label holds no config values.
	LabelConfigDigest = "manifold.config-digest"
)

// containerPort is $PORT inside every dyno: each container has its own address, so
// every dyno can listen on the same port.
const containerPort = 5000

// containerName is the first choice of a dyno's container name: hello.production.web.1.
func containerName(spec drivers.DynoSpec) string {
	return spec.App + "." + spec.Env + "." + spec.Name()
}

// containerNames are the names Start tries in order. During a rolling deploy the new
// web.1 runs beside the old web.1, so when the plain name is taken the release is
// appended (hello.production.web.1.v8), and when that is taken too (a replacement
// while the old container is still being removed) a random suffix.
func containerNames(spec drivers.DynoSpec) []string {
	base := containerName(spec)
	withRelease := base + ".v" + strconv.Itoa(spec.Release)
	return []string{base, withRelease, withRelease + "." + randomSuffix()}
}

func randomSuffix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// networkName is the bridge network of an app in an environment.
func networkName(app, env string) string {
	return "manifold." + app + "." + env
}

// dynoLabels are the labels of a dyno's container.
func (d *Driver) dynoLabels(spec drivers.DynoSpec) (map[string]string, error) {
	public, configDigest := labelSpec(spec)
	encoded, err := json.Marshal(public)
	if err != nil {
		return nil, fmt.Errorf("encode spec of %s: %w", spec.Ref(), err)
	}
	return map[string]string{
		LabelApp:      spec.App,
		LabelEnv:      spec.Env,
		LabelRelease:  strconv.Itoa(spec.Release),
		LabelProcess:  spec.Type,
		LabelDyno:     spec.Name(),
		LabelSlug:     spec.SlugKey,
		LabelInstance: d.opts.Instance,
		LabelSpec:     string(encoded),

		LabelConfigDigest: configDigest,
	}, nil
}

// specFromLabels decodes the DynoSpec a container was started with.
func specFromLabels(labels map[string]string) (drivers.DynoSpec, error) {
	var spec drivers.DynoSpec
	raw, ok := labels[LabelSpec]
	if !ok {
		return spec, fmt.Errorf("label %s missing", LabelSpec)
	}
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		return spec, fmt.Errorf("label %s: %w", LabelSpec, err)
	}
	return spec, nil
}
