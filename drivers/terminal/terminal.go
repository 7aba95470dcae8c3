// Package terminal opens pseudo-terminals for one-off dynos that run on one
// (`manifold run` from a terminal, as `heroku run bash`), and puts the CLI's own
// terminal in raw mode while it relays one.
package terminal

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Size is a terminal's size in characters.
type Size struct {
	Rows, Cols uint16
}

// OpenPTY opens a new pseudo-terminal of the given size: the controller side (what
// the driver reads and writes) and the terminal side (the process's stdin, stdout and
// stderr, and its controlling terminal).
func OpenPTY(size Size) (controller, tty *os.File, err error) {
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

// IsTerminal reports whether f is a terminal.
func IsTerminal(f *os.File) bool {
	return control(f, func(fd int) error {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	}) == nil
}

// SizeOf returns the size of the terminal f.
func SizeOf(f *os.File) (Size, error) {
	var size Size
	err := control(f, func(fd int) error {
		ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ)
		if err == nil {
			size = Size{Rows: ws.Row, Cols: ws.Col}
		}
		return err
	})
	if err != nil {
		return Size{}, fmt.Errorf("terminal size: %w", err)
	}
	return size, nil
}

// MakeRaw puts the terminal f in raw mode (no echo, no line editing, no signals from
// keys: they all go to the remote program, which has a terminal of its own) and
// returns the function that restores it.
func MakeRaw(f *os.File) (restore func() error, err error) {
	var old *unix.Termios
	if err := control(f, func(fd int) error {
		var err error
		old, err = unix.IoctlGetTermios(fd, unix.TCGETS)
		return err
	}); err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	raw := *old
	// cfmakeraw(3).
	raw.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	raw.Oflag &^= unix.OPOST
	raw.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	raw.Cflag &^= unix.CSIZE | unix.PARENB
	raw.Cflag |= unix.CS8
	raw.Cc[unix.VMIN], raw.Cc[unix.VTIME] = 1, 0
	if err := control(f, func(fd int) error { return unix.IoctlSetTermios(fd, unix.TCSETS, &raw) }); err != nil {
		return nil, fmt.Errorf("raw terminal: %w", err)
	}
	return func() error {
		return control(f, func(fd int) error { return unix.IoctlSetTermios(fd, unix.TCSETS, old) })
	}, nil
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
