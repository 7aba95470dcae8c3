//go:build !linux

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/manifold-paas/manifold/drivers"
)

// openProcessDriver fails off Linux: the process driver watches dynos through /proc,
// pidfds and inotify. The CLI's client commands (ps, logs, run, …) work from any
// system; `manifold up` there runs dynos with --driver docker.
func openProcessDriver(context.Context, upOptions, string, drivers.LogSink, *slog.Logger) (drivers.Driver, error) {
	return nil, errors.New("the process driver runs on Linux only: use manifold up --driver docker")
}
