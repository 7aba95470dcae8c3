package process_test

import (
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/term"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
)

// TestOpenPTY runs a real shell on a new pseudo-terminal: it sees a terminal of the
// size asked for, its input arrives, and its output comes back through the controller.
func TestOpenPTY(t *testing.T) {
	t.Parallel()
	controller, tty, err := process.OpenPTY(drivers.TerminalSize{Rows: 33, Cols: 101})
	if err != nil {
		t.Fatal(err)
	}
	defer controller.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		t.Fatal("the terminal side is not a terminal")
	}
	if cols, rows, err := term.GetSize(int(tty.Fd())); err != nil || rows != 33 || cols != 101 {
		t.Fatalf("GetSize = %dx%d, %v; want 33x101", rows, cols, err)
	}
	cmd := exec.Command("/bin/sh", "-c", `test -t 0 && test -t 1 && echo on-a-terminal; stty size; read x; echo "got $x"`)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	if _, err := io.WriteString(controller, "hello\n"); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() {
		out, _ := io.ReadAll(controller) // ends with EIO once the shell is gone
		done <- string(out)
	}()
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-done:
		for _, want := range []string{"on-a-terminal\r\n", "33 101\r\n", "got hello\r\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("output %q lacks %q", out, want)
			}
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the controller side did not end after the shell exited")
	}
}

// TestMakeRaw puts a terminal from OpenPTY in raw mode and back with x/term, as
// `manifold run` does: in raw mode no "\r" is added to output, restored it is again.
func TestMakeRaw(t *testing.T) {
	t.Parallel()
	controller, tty, err := process.OpenPTY(drivers.TerminalSize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatal(err)
	}
	defer controller.Close()
	defer tty.Close()
	state, err := term.MakeRaw(int(tty.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tty, "a\nb"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	n, err := controller.Read(buf)
	if err != nil || string(buf[:n]) != "a\nb" {
		t.Errorf("raw output read %q, %v; want %q (no \\r added)", buf[:n], err, "a\nb")
	}
	if err := term.Restore(int(tty.Fd()), state); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(tty, "c\n"); err != nil {
		t.Fatal(err)
	}
	n, err = controller.Read(buf)
	if err != nil || string(buf[:n]) != "c\r\n" {
		t.Errorf("restored output read %q, %v; want %q", buf[:n], err, "c\r\n")
	}
}
