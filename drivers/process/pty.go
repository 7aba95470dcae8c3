package process

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/manifold-paas/manifold/drivers"
)

// OpenPTY opens a new pseudo-terminal of the given size for a one-off dyno that runs
// on one (`manifold run` from a terminal, as `heroku run bash`): the controller side
// (what the driver reads and writes) and the terminal side (the process's stdin,
// stdout and stderr, and its controlling terminal). Linux only (/dev/ptmx, /dev/pts).
func OpenPTY(size drivers.TerminalSize) (controller, tty *os.File, err error) {
	controller, err = os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open a pseudo-terminal: %w", err)
	}
	fail := func(what string, err error) (*os.File, *os.File, error) {
		controller.Close()
		return nil, nil, fmt.Errorf("open a pseudo-terminal: %s: %w", what, err)
	}
	// Through the raw connection, not Fd(): Fd would make reads blocking, and a
	// blocked read is not ended by Close.
	var n int
	if err := control(controller, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock: %w", err)
		}
		var err error
		n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN)
		return err
	}); err != nil {
		return fail("number", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fail("open its terminal side", err)
	}
	if size.Rows > 0 && size.Cols > 0 {
		if err := control(tty, func(fd int) error {
			return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: size.Rows, Col: size.Cols})
		}); err != nil {
			tty.Close()
			return fail("set its size", err)
		}
	}
	return controller, tty, nil
}

// control runs fn on f's file descriptor without changing its blocking mode.
func control(f *os.File, fn func(fd int) error) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := raw.Control(func(fd uintptr) { fnErr = fn(int(fd)) }); err != nil {
		return err
	}
	return fnErr
}
