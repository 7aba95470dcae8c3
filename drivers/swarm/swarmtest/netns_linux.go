package swarmtest

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// dialIn connects to addr from the network namespace at path and closes the
// connection: nil when it could connect within timeout.
func dialIn(path, addr string, timeout time.Duration) error {
	errc := make(chan error, 1)
	go func() {
		// The thread enters the namespace and is never unlocked: it ends with this
		// goroutine, so nothing else ever runs in the namespace. The socket is made
		// on this thread (an IP literal needs no resolver goroutine).
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		conn, err := net.DialTimeout("tcp", addr, timeout)
		if err == nil {
			_ = conn.Close()
		}
		errc <- err
	}()
	return <-errc
}
