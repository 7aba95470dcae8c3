// Package docker is the Docker Engine side of manifold: dynos run as containers (one
// per dyno, from a stack image with the slug at /app, on a bridge network per app) and
// buildpack steps as offline build containers of the same stack (BuildRunner).
//
// It implements drivers.Driver on drivers/supervisor: it only starts, watches, signals
// and removes containers, and keeps every fact it needs in container labels, so a
// restarted daemon adopts the containers it left running.
package docker
