package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/volume"

	"github.com/manifold-paas/manifold/drivers"
)

// LabelVolume names the slug volume a dyno's container mounts at /app.
const LabelVolume = "manifold.slug-volume"

// appTmpBytes bounds the writable tmpfs at /app/tmp of a dyno whose /app is a
// read-only slug volume.
const appTmpBytes = 64 << 20

var unsafeVolumeChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]+`)

// slugVolumeName is the volume of one slug for this instance. The slug key names the
// content; a digest of the tarball's path, size and time guards against two tarballs
// offered under one key.
func (d *Driver) slugVolumeName(spec drivers.DynoSpec) (string, error) {
	st, err := os.Stat(spec.SlugPath)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s|%d|%d", spec.SlugPath, st.Size(), st.ModTime().UnixNano()))
	key := unsafeVolumeChars.ReplaceAllString(spec.SlugKey, "-")
	if len(key) > 64 {
		key = key[:64]
	}
	return "manifold-slug-" + unsafeVolumeChars.ReplaceAllString(d.opts.Instance, "-") + "-" + key + "-" + hex.EncodeToString(sum[:4]), nil
}

// ensureSlugVolume makes the slug's volume when missing: a filler container (never
// started) mounts it at /app, the engine unpacks the tarball into it, and an empty
// tmp/ is added for the tmpfs dynos mount there. The caller holds the volume's lock.
// On error nothing is left behind.
func (d *Driver) ensureSlugVolume(ctx context.Context, spec drivers.DynoSpec, name, dst string) error {
	if d.volumes.isKnown(name) {
		return nil
	}
	if _, err := d.cli.VolumeInspect(ctx, name); err == nil {
		d.volumes.setKnown(name, true)
		return nil
	} else if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect slug volume %s: %w", name, err)
	}
	began := time.Now()
	if _, err := d.cli.VolumeCreate(ctx, volume.CreateOptions{Name: name, Labels: map[string]string{
		LabelInstance: d.opts.Instance, LabelSlug: spec.SlugKey}}); err != nil {
		return fmt.Errorf("create slug volume %s: %w", name, err)
	}
	err := d.fillSlugVolume(ctx, spec, name, dst)
	if err != nil {
		rmCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if rmErr := d.cli.VolumeRemove(rmCtx, name, true); rmErr != nil && !cerrdefs.IsNotFound(rmErr) {
			d.log.Warn("remove slug volume after a failed copy", "volume", name, "err", rmErr)
		}
		return err
	}
	d.volumes.setKnown(name, true)
	d.log.Debug("made slug volume", "volume", name, "slug", spec.SlugKey, "took", time.Since(began))
	return nil
}

func (d *Driver) fillSlugVolume(ctx context.Context, spec drivers.DynoSpec, name, dst string) error {
	filler, err := d.cli.ContainerCreate(ctx,
		&container.Config{Image: spec.Stack, Cmd: []string{"true"}, Entrypoint: []string{},
			Labels: map[string]string{LabelInstance: d.opts.Instance, LabelOneOff: "slug-filler", LabelApp: spec.App, LabelEnv: spec.Env}},
		&container.HostConfig{Binds: []string{name + ":/app"}}, nil, nil, "")
	if err != nil {
		return fmt.Errorf("create container to fill slug volume: %w", imageError(spec, err))
	}
	defer d.removeContainer(spec, filler.ID)
	if err := d.copySlug(ctx, filler.ID, spec.SlugPath, dst); err != nil {
		return fmt.Errorf("copy slug %s into volume %s: %w", spec.SlugPath, name, err)
	}
	var tmpDir bytes.Buffer
	tw := tar.NewWriter(&tmpDir)
	_ = tw.WriteHeader(&tar.Header{Name: "tmp/", Mode: 0o1777, Typeflag: tar.TypeDir})
	_ = tw.Close()
	if err := d.cli.CopyToContainer(ctx, filler.ID, "/app", &tmpDir, container.CopyToContainerOptions{}); err != nil {
		return fmt.Errorf("add tmp/ to slug volume %s: %w", name, err)
	}
	return nil
}

// removeVolumeIfUnused removes a slug volume once no container of this instance
// mounts it.
func (d *Driver) removeVolumeIfUnused(ctx context.Context, name string) {
	if name == "" {
		return
	}
	unlock := d.volumes.lock(name)
	defer unlock()
	users, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("volume", name))})
	if err != nil {
		d.log.Warn("list containers before removing slug volume", "volume", name, "err", err)
		return
	}
	if len(users) > 0 {
		return
	}
	d.volumes.setKnown(name, false)
	if err := d.cli.VolumeRemove(ctx, name, false); err != nil && !cerrdefs.IsNotFound(err) {
		d.log.Warn("remove slug volume", "volume", name, "err", err)
	}
}

// releaseShared removes what a container that just went shared, once nothing else
// uses it: its app network and its slug volume.
func (d *Driver) releaseShared(ctx context.Context, app, env, volume string) {
	ctx = context.WithoutCancel(ctx)
	if app != "" && env != "" {
		d.removeNetworkIfUnused(ctx, app, env)
	}
	d.removeVolumeIfUnused(ctx, volume)
}
