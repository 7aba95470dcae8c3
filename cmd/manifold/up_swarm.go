package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
)

// openSwarmDriver drives the swarm whose manager DOCKER_HOST (or the local socket)
// is. The slug server's address comes from MANIFOLD_SWARM_SLUG_LISTEN (default :0;
// give a fixed port so tasks restarted after the daemon can fetch again) and the URL
// the nodes use from MANIFOLD_SWARM_SLUG_URL (see docs/swarm.md).
func openSwarmDriver(ctx context.Context, o upOptions, sink drivers.LogSink, logger *slog.Logger) (drivers.Driver, error) {
	return swarm.New(ctx, swarm.Options{
		Logs: sink, Logger: logger, BootTimeout: o.bootTimeout, Instance: o.dockerInstance,
		SlugListen: os.Getenv("MANIFOLD_SWARM_SLUG_LISTEN"),
		SlugURL:    os.Getenv("MANIFOLD_SWARM_SLUG_URL"),
	})
}
