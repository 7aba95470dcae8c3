package docker_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/drivers"
)

func oneOff(app, env, command, slugPath string) drivers.OneOff {
	return drivers.OneOff{DynoSpec: drivers.DynoSpec{
		App: app, Env: env, Release: 3, SlugKey: "k", SlugPath: slugPath, Command: command,
	}}
}

func TestRunOneOff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	app := randomName("run")
	slugPath := slug(t, map[string]string{
		"bin/hello":         "#!/bin/sh\necho \"hello $1 from $DYNO in $(pwd)\"\n",
		".profile.d/env.sh": "export FROM_PROFILE=sourced\n",
	})
	tests := []struct {
		name, command, stdin string
		wantCode             int
		wantOut, wantErr     string
	}{
		{"exit code passed through", "bin/hello you; echo oops >&2; exit 7", "", 7, "hello you from run.1 in /app\n", "oops\n"},
		{"stdin attached", "tr a-z A-Z", "shout\n", 0, "SHOUT\n", ""},
		{".profile.d sourced", "echo $FROM_PROFILE", "", 0, "sourced\n", ""},
		{"command not found", "no-such-command", "", 127, "", "no-such-command: not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			o := oneOff(app, "staging", tc.command, slugPath)
			o.Index = 1
			o.Stdout, o.Stderr = &stdout, &stderr
			if tc.stdin != "" {
				o.Stdin = strings.NewReader(tc.stdin)
			}
			code, err := d.Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if code != tc.wantCode {
				t.Errorf("exit code %d, want %d", code, tc.wantCode)
			}
			if stdout.String() != tc.wantOut {
				t.Errorf("stdout %q, want %q", stdout.String(), tc.wantOut)
			}
			if !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("stderr %q, want %q in it", stderr.String(), tc.wantErr)
			}
			if n := len(e.containers()); n != 0 {
				t.Errorf("%d containers left after the one-off", n)
			}
		})
	}
	list, err := d.List(context.Background())
	if err != nil || len(list) != 0 {
		t.Errorf("one-offs listed as dynos: %+v, %v", list, err)
	}
}

// A dyno of one app cannot open a connection to another app's dyno; it can reach its
// own app's.
func TestAppNetworksAreIsolated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	ctx := context.Background()
	slugPath := webSlug(t)
	appA, appB := randomName("a"), randomName("b")
	for _, app := range []string{appA, appB} {
		if _, err := d.Start(ctx, webSpec(app, 1, slugPath)); err != nil {
			t.Fatal(err)
		}
	}
	webA := waitDyno(t, d, appA, "web.1", isUp)
	webB := waitDyno(t, d, appB, "web.1", isUp)
	probe := func(addr string) string {
		host, port, _ := strings.Cut(addr, ":")
		// busybox nc: -w 1 bounds the connect; a refused or dropped connect exits 1.
		return `printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 1 ` + host + " " + port
	}
	tests := []struct {
		name, target string
		wantCode     int
	}{
		{"own app", webA.Addr, 0},
		{"other app", webB.Addr, 1},
	}
	for _, tc := range tests {
		var stdout bytes.Buffer
		o := oneOff(appA, "production", probe(tc.target), slugPath)
		o.Stdout = &stdout
		code, err := d.Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if code != tc.wantCode {
			t.Errorf("%s: nc exit %d, want %d (output %q)", tc.name, code, tc.wantCode, stdout.String())
		}
		if tc.wantCode == 0 && !strings.Contains(stdout.String(), "hello from a slug") {
			t.Errorf("%s: got %q", tc.name, stdout.String())
		}
	}
	stopAll(t, d)
}

// TestRunOnATerminal runs a one-off container with a terminal, as `manifold run bash`
// from a terminal does: the process sees a terminal of the size asked for, its input
// arrives, both its streams come back through stdout, and its exit code is kept. (It
// reads first: the engine applies the size just after the start, as docker run -t
// does, and the input is sent after that.)
func TestRunOnATerminal(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.driver(e.options())
	var stdout, stderr bytes.Buffer
	o := oneOff(randomName("tty"), "staging", `read x; test -t 0 && test -t 1 && echo on-a-terminal; stty size; echo "got $x"; echo oops >&2; exit 5`,
		slug(t, map[string]string{"bin/.keep": ""}))
	o.Stdin, o.Stdout, o.Stderr = strings.NewReader("hello\n"), &stdout, &stderr
	o.Terminal = &drivers.TerminalSize{Rows: 33, Cols: 101}
	code, err := d.Run(context.Background(), o)
	if err != nil || code != 5 {
		t.Fatalf("Run: %d, %v; want 5\n%s", code, err, stdout.String())
	}
	for _, want := range []string{"on-a-terminal\r\n", "33 101\r\n", "got hello\r\n", "oops\r\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output %q lacks %q", stdout.String(), want)
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr %q; a terminal's output goes to stdout", stderr.String())
	}
}
