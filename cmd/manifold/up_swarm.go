package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
)

// defaultSwarmSlugListen is where the slug server listens when neither
// --swarm-slug-listen nor MANIFOLD_SWARM_SLUG_LISTEN says: a fixed port on every
// interface, since the URL is written into every service and a task restarted after
// the daemon did (a crash, a node that failed) fetches from it again.
const defaultSwarmSlugListen = ":7071"

// openSwarmDriver drives the swarm whose manager DOCKER_HOST (or the local socket)
// is, serving slugs to the nodes at --swarm-slug-listen and telling them
// --swarm-slug-url; the nodes' firewall lets the dynos' ports be reached from
// --swarm-router-sources only (default: the slug URL's host; "none": no rules).
// See docs/swarm.md.
func openSwarmDriver(ctx context.Context, o upOptions, sink drivers.LogSink, logger *slog.Logger) (drivers.Driver, error) {
	sources, noGuard, err := swarm.ParseRouterSources(o.swarmRouterSources)
	if err != nil {
		return nil, fmt.Errorf("--swarm-router-sources (MANIFOLD_SWARM_ROUTER_SOURCES): %w", err)
	}
	return swarm.New(ctx, swarm.Options{
		Logs: sink, Logger: logger, BootTimeout: o.bootTimeout, Instance: o.dockerInstance,
		SlugListen: o.swarmSlugListen, SlugURL: o.swarmSlugURL,
		RouterSources: sources, NoGuard: noGuard,
	})
}
