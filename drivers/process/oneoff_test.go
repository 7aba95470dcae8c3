package process

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

func TestRunOneOff(t *testing.T) {
	h := newHarness(t, Options{})
	for _, tc := range []struct {
		name, command, stdin string
		code                 int
		stdout, stderr       string
	}{
		{"exit code", "exit 7", "", 7, "", ""},
		{"streams", "hello; echo oops >&2", "", 0, "hello-from-slug-bin\n", "oops\n"},
		{"stdin", `read line; echo "got $line"`, "ping\n", 0, "got ping\n", ""},
		{"env", `echo "$DYNO $PS ${PORT:+port}"`, "", 0, "run.N run.N port\n", ""},
		{"signal", "kill -TERM $$", "", 143, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			spec := h.spec("", 0, tc.command, nil)
			code, err := h.d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdin: strings.NewReader(tc.stdin), Stdout: &stdout, Stderr: &stderr})
			if err != nil {
				t.Fatal(err)
			}
			out := stdout.String()
			if tc.name == "env" {
				fields := strings.Fields(out)
				if len(fields) == 3 && fields[0] == fields[1] && strings.HasPrefix(fields[0], "run.") {
					out = "run.N run.N " + fields[2] + "\n"
				}
			}
			if code != tc.code || out != tc.stdout || stderr.String() != tc.stderr {
				t.Fatalf("code %d stdout %q stderr %q; want %d %q %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
	if dynos, err := h.d.List(context.Background()); err != nil || len(dynos) != 0 {
		t.Errorf("one-offs in List: %+v (%v)", dynos, err)
	}
	inOrder(t, h.sink.texts("run.1", logs.SourceHeroku),
		"Starting process with command `exit 7`",
		"State changed from starting to up",
		"Process exited with status 7",
		"State changed from up to complete")
}

func TestRunOneOffCancelKillsIt(t *testing.T) {
	h := newHarness(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	var stdout bytes.Buffer
	spec := h.spec("release", 1, `echo started; sleep 60 & wait`, nil)
	done := make(chan struct{})
	var code int
	var err error
	go func() {
		code, err = h.d.Run(ctx, drivers.OneOff{DynoSpec: spec, Stdout: &stdout})
		close(done)
	}()
	h.sink.waitLine(t, "release.1", logs.SourceHeroku, "State changed from starting to up")
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Run did not return after cancel")
	}
	if code != 137 || !errors.Is(err, context.Canceled) {
		t.Fatalf("code %d err %v, want 137 and context.Canceled", code, err)
	}
}

// A one-off that leaves a background child holding its output: the child dies with
// the leader (killed before the leader is reaped, so never by a reused pid), the
// output ends, and Run returns the leader's code, not a WaitDelay error.
func TestRunOneOffLeftoverChildDiesWithLeader(t *testing.T) {
	h := newHarness(t, Options{})
	var stdout bytes.Buffer
	spec := h.spec("", 0, "sleep 60 & echo started; exit 0", nil)
	code, err := h.d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdout: &stdout, Stderr: &stdout})
	if err != nil || code != 0 || stdout.String() != "started\n" {
		t.Fatalf("code %d err %v stdout %q; want 0, nil, started", code, err, stdout.String())
	}
}

// TestRunOneOffOnATerminal runs a one-off on a pseudo-terminal, as `manifold run bash`
// from a terminal does: the process sees a terminal of the size asked for on stdin and
// stdout, its input arrives through it, both its streams come back through stdout,
// its exit code is kept, and a cancelled one is killed with its session.
func TestRunOneOffOnATerminal(t *testing.T) {
	h := newHarness(t, Options{})
	var stdout lockedBuffer
	spec := h.spec("", 0, `test -t 0 && test -t 1 && echo on-a-terminal; stty size; read x; echo "got $x"; echo oops >&2; exit 5`, nil)
	code, err := h.d.Run(context.Background(), drivers.OneOff{DynoSpec: spec, Stdin: strings.NewReader("hello\n"),
		Stdout: &stdout, Stderr: failWriter{t}, Terminal: &drivers.TerminalSize{Rows: 33, Cols: 101}})
	if err != nil || code != 5 {
		t.Fatalf("Run: %d, %v; want 5\n%s", code, err, stdout.String())
	}
	for _, want := range []string{"on-a-terminal\r\n", "33 101\r\n", "got hello\r\n", "oops\r\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output %q lacks %q", stdout.String(), want)
		}
	}

	// A shell that waits for input that never comes is killed with its session.
	ctx, cancel := context.WithCancel(context.Background())
	never, feed := io.Pipe()
	defer feed.Close()
	done := make(chan error, 1)
	go func() {
		_, err := h.d.Run(ctx, drivers.OneOff{DynoSpec: h.spec("", 0, `sleep 600 & read x`, nil), Stdin: never,
			Stdout: io.Discard, Terminal: &drivers.TerminalSize{Rows: 24, Cols: 80}})
		done <- err
	}()
	cancel() // before or after it started: either way it must end with an error
	select {
	case err := <-done:
		if err == nil {
			t.Error("a cancelled one-off on a terminal reported no error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("a cancelled one-off on a terminal did not end")
	}
}

// failWriter fails the test when written to: a one-off on a terminal has no stderr of
// its own.
type failWriter struct{ t *testing.T }

func (w failWriter) Write(p []byte) (int, error) {
	w.t.Errorf("wrote %q to stderr; a terminal's output goes to stdout", p)
	return len(p), nil
}

// lockedBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
