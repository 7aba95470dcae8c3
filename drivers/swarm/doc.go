// Package swarm runs dynos as tasks of Docker Swarm services, one service per app,
// environment and process type, through a swarm manager: no registry (the stack image
// is referenced by ID, slugs are fetched from the daemon's slug server). See docs/swarm.md.
package swarm
