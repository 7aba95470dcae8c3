package supervisor_test

import (
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers/supervisor"
)

const mib = 1 << 20

// TestHerokuLines: the wording of the lines Heroku's dyno manager logs.
func TestHerokuLines(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ got, want string }{
		{supervisor.MemoryUsage(612*mib, 512*mib), "Process running mem=612M(119.5%)"},
		{supervisor.MemoryUsage(1063*mib, 512*mib), "Process running mem=1063M(207.6%)"},
		{supervisor.MemoryUsage(512*mib+mib/2, 512*mib), "Process running mem=512M(100.1%)"},
		{supervisor.MemoryUsage(48*mib, 40*mib), "Process running mem=48M(120.0%)"},
		{supervisor.Seconds(60 * time.Second), "60 seconds"},
		{supervisor.Seconds(300 * time.Millisecond), "0.3 seconds"},
		{supervisor.R10(time.Minute, false, ""), "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds of launch"},
		{supervisor.R10(time.Minute, false, "/up"), "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds of launch"},
		{supervisor.R10(time.Minute, true, "up"), "Error R10 (Boot timeout) -> Web process did not answer GET /up with 2xx within 60 seconds of launch"},
		{supervisor.R12(30 * time.Second), "Error R12 (Exit timeout) -> At least one process failed to exit within 30 seconds of SIGTERM"},
		{supervisor.Exited(supervisor.Exit{Code: 143}), "Process exited with status 143"},
		{supervisor.Exited(supervisor.Exit{Unknown: "why"}), "Process exited with status unknown (why)"},
		{supervisor.Starting("bin/web"), "Starting process with command `bin/web`"},
		{supervisor.StateChanged("up", "crashed"), "State changed from up to crashed"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
