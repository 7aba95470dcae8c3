package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/reconciler"
)

// openProcessDriver opens the embedded process driver, which needs Linux (/proc,
// pidfds, inotify, pseudo-terminals from /dev/ptmx); driver_other.go says so elsewhere.
func openProcessDriver(ctx context.Context, o upOptions, dir string, sink drivers.LogSink, logger *slog.Logger) (drivers.Driver, error) {
	user, err := dynoUser(o.dynoUser, logger)
	if err != nil {
		return nil, err
	}
	return process.New(ctx, process.Options{
		StateDir: dir, Logs: sink, Logger: logger, BootTimeout: o.bootTimeout, User: user,
		OpenSecrets: reconciler.SecretOpener(o.keyring),
	})
}

// dynoUser is who the process driver's dynos run as: for a daemon run as root,
// --dyno-user, else manifold-dyno when the system has it, else nobody (docs/api.md,
// "Trust boundary"); a daemon run by another user runs them as itself.
func dynoUser(name string, logger *slog.Logger) (*process.User, error) {
	if os.Geteuid() != 0 {
		if name != "" {
			return nil, fmt.Errorf("--dyno-user %s: only a daemon run as root runs dynos as another user", name)
		}
		return nil, nil
	}
	switch name {
	case "root":
		logger.Warn("dynos run as root: only the API socket's peer check keeps them from the control plane")
		return nil, nil
	case "":
		if u, err := process.LookupUser("manifold-dyno"); err == nil {
			return u, nil
		}
		name = "nobody"
	}
	return process.LookupUser(name)
}
