package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"

	"github.com/manifold-paas/manifold/drivers"
)

// A container's Env is shown by `docker inspect` to anyone who may talk to the
// engine, so a dyno's secrets never go there: they are copied into the container as a
// root-only file before it starts, and its shell exports them before the command. The
// file stays in the container's own layer, so the engine's restarts and a daemon that
// adopts the container need nothing more; it goes when the container is removed.
const secretsFile = "/.manifold-secrets"

// loadSecrets is the shell prefix that exports the secrets file's assignments.
const loadSecrets = "set -a; . " + secretsFile + "; set +a; "

// secretsTar is a tar stream of secretsFile holding one shell assignment per secret,
// each value single-quoted.
func secretsTar(secrets map[string]string) ([]byte, error) {
	var script strings.Builder
	for _, name := range slices.Sorted(maps.Keys(secrets)) {
		script.WriteString(name + "='" + strings.ReplaceAll(secrets[name], "'", `'\''`) + "'\n")
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(secretsFile, "/"), Mode: 0o400, Size: int64(script.Len())}); err != nil {
		return nil, err
	}
	if _, err := tw.Write([]byte(script.String())); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// copySecrets puts the dyno's secrets file into a created container.
func (d *Driver) copySecrets(ctx context.Context, id string, secrets map[string]string) error {
	archive, err := secretsTar(secrets)
	if err != nil {
		return err
	}
	return d.cli.CopyToContainer(ctx, id, "/", bytes.NewReader(archive), container.CopyToContainerOptions{})
}

// labelSpec is the spec as the spec label keeps it: no config values at all (labels
// are public to every engine client), only a digest of them to compare.
func labelSpec(spec drivers.DynoSpec) (drivers.DynoSpec, string) {
	payload, _ := json.Marshal(struct {
		Config  map[string]string
		Secrets map[string]string
	}{spec.Config, spec.SealedSecrets}) // maps of strings always marshal
	sum := sha256.Sum256(payload)
	spec.Config, spec.Secrets, spec.SealedSecrets = nil, nil, nil
	return spec, "sha256:" + hex.EncodeToString(sum[:])
}
