package supervisor

import (
	"fmt"
	"strconv"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// Heroku's dyno manager says these lines (source heroku) as they are; each is built
// here once, so every driver words them alike.
const (
	// MsgR14 is logged each MemoryConfig.ReportInterval while a dyno is over its quota.
	MsgR14 = "Error R14 (Memory quota exceeded)"
	// MsgR15 is logged when a dyno is killed past its hard memory limit; it is also
	// the crashed dyno's Reason.
	MsgR15 = "Error R15 (Memory quota vastly exceeded)"
	// ReasonR10 is the Reason of a dyno crashed for not booting in time.
	ReasonR10 = "Error R10 (Boot timeout)"
	// MsgKill is logged before a dyno is killed for R10 or R15.
	MsgKill = "Stopping process with SIGKILL"
	// MsgTerm is logged when a dyno is stopped.
	MsgTerm = "Stopping all processes with SIGTERM"
	// MsgKillRemaining follows R12.
	MsgKillRemaining = "Stopping remaining processes with SIGKILL"
)

// StateChanged is "State changed from up to crashed".
func StateChanged(from, to drivers.State) string {
	return fmt.Sprintf("State changed from %s to %s", from, to)
}

// Starting is "Starting process with command `…`".
func Starting(command string) string {
	return "Starting process with command `" + command + "`"
}

// StartFailed is what is logged when a dyno's process could not be started.
func StartFailed(err error) string {
	return "Error starting process: " + err.Error()
}

// Exited is "Process exited with status 1", or why the status is unknown.
func Exited(e Exit) string {
	if e.Unknown != "" {
		return "Process exited with status unknown (" + e.Unknown + ")"
	}
	return "Process exited with status " + strconv.Itoa(e.Code)
}

// R10 is the boot timeout line: the web process never bound $PORT, or (bound, with a
// health check path) never answered it 2xx, within timeout of its launch.
func R10(timeout time.Duration, bound bool, healthCheck string) string {
	if bound && healthCheck != "" {
		return fmt.Sprintf("Error R10 (Boot timeout) -> Web process did not answer GET %s with 2xx within %s of launch", healthPath(healthCheck), Seconds(timeout))
	}
	return fmt.Sprintf("Error R10 (Boot timeout) -> Web process failed to bind to $PORT within %s of launch", Seconds(timeout))
}

// R12 is the exit timeout line: the dyno outlived its grace after SIGTERM.
func R12(grace time.Duration) string {
	return fmt.Sprintf("Error R12 (Exit timeout) -> At least one process failed to exit within %s of SIGTERM", Seconds(grace))
}

// MemoryUsage is Heroku's sample line: "Process running mem=612M(119.6%)", in MiB (a
// standard-1x's 512M is 512 MiB) and per cent of the quota.
func MemoryUsage(usage, quota int64) string {
	return fmt.Sprintf("Process running mem=%dM(%.1f%%)", usage>>20, float64(usage)*100/float64(quota))
}

// Seconds words a duration as Heroku does: "60 seconds", "0.3 seconds".
func Seconds(d time.Duration) string {
	if d%time.Second == 0 {
		return strconv.Itoa(int(d/time.Second)) + " seconds"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + " seconds"
}

// healthPath is the health check path as requested: always absolute.
func healthPath(path string) string {
	if path == "" || path[0] != '/' {
		return "/" + path
	}
	return path
}
