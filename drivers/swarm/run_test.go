package swarm_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	dockerswarm "github.com/docker/docker/api/types/swarm"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/swarm"
	"github.com/manifold-paas/manifold/drivers/swarm/swarmtest"
)

// TestOneOffRendezvous runs one-offs that connect out to the driver's rendezvous
// endpoint on a two-node swarm: stdin reaches the command and its output comes back
// while it runs, a terminal is a real pty of the size given, a one-off on the
// non-manager node works, the endpoint takes each token once and no other, and a
// one-off that cannot reach it fails naming the URL, its service removed, and Close
// ends a one-off that waits on stdin (removing its service).
func TestOneOffRendezvous(t *testing.T) {
	c := newCluster(t, 2)
	listen := net.JoinHostPort(c.HostAddr, freePort(t, c.HostAddr))
	instance := randomName()
	d := newDriver(t, c, instance, listen, &sink{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	slug := makeSlug(t)
	runSpec := func(command string) drivers.DynoSpec {
		spec := webSpec("hello", 1, 1, slug)
		spec.Type, spec.Command = "run", command
		return spec
	}

	t.Run("stdin reaches the command, its output comes back", func(t *testing.T) {
		input := bytes.Repeat([]byte("rendezvous \xff\r\n\x00"), 20000) // 300 000 bytes, binary
		for _, tc := range []struct {
			command string
			want    string
		}{
			{"wc -c", "300000\n"},
			{"cat", string(input)},
			{"cat >/dev/null; echo to-stderr >&2", "to-stderr\n"},                 // stderr is merged into the output
			{"cat >/dev/null; env | grep -c ^MANIFOLD_RENDEZVOUS || true", "0\n"}, // the token left the environment
		} {
			var out bytes.Buffer
			code, err := d.Run(ctx, drivers.OneOff{DynoSpec: runSpec(tc.command), Stdin: bytes.NewReader(input), Stdout: &out, Stderr: &out})
			if err != nil || code != 0 {
				t.Fatalf("%s: code %d, err %v", tc.command, code, err)
			}
			if got := strings.TrimSpace(out.String()); got != strings.TrimSpace(tc.want) {
				t.Errorf("%s: output %q (%d bytes), want %q (%d bytes)", tc.command, abbrev(got), len(got), abbrev(tc.want), len(tc.want))
			}
		}
	})

	t.Run("a terminal is a pty of the size given; the exit code passes through", func(t *testing.T) {
		var out bytes.Buffer
		size := &drivers.TerminalSize{Rows: 33, Cols: 101}
		spec := runSpec("tty; stty size; echo TERM=$TERM; env | grep -cE '^MANIFOLD_(RENDEZVOUS|TTY)'; exit 5")
		spec.Config["TERM"] = "xterm-256color" // as the reconciler sets it
		code, err := d.Run(ctx, drivers.OneOff{DynoSpec: spec, Stdout: &out, Terminal: size})
		if err != nil {
			t.Fatalf("run: %v", err)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n")
		if code != 5 || len(lines) != 4 || !strings.HasPrefix(lines[0], "/dev/pts/") || lines[1] != "33 101" ||
			lines[2] != "TERM=xterm-256color" || lines[3] != "0" {
			t.Fatalf("tty; stty size; exit 5: code %d, output %q; want 5, /dev/pts/N, 33 101, the TERM given and no rendezvous variable", code, out.String())
		}
	})

	t.Run("an interactive shell on the terminal", func(t *testing.T) {
		stdin, typist := io.Pipe()
		defer typist.Close()
		out := &watchedBuffer{}
		done := make(chan error, 1)
		var code int
		go func() {
			var err error
			code, err = d.Run(ctx, drivers.OneOff{DynoSpec: runSpec("sh"), Stdin: stdin, Stdout: out, Terminal: &drivers.TerminalSize{Rows: 24, Cols: 80}})
			done <- err
		}()
		// Typed keys: Return is CR, as a raw terminal sends it; \xff is a byte the
		// telnet layer must escape both ways.
		if _, err := io.WriteString(typist, "echo in-tty-$((40+2)) $(printf '\\377' | od -An -tx1)\r"); err != nil {
			t.Fatal(err)
		}
		if err := poll(t, time.Minute, func() bool { return strings.Contains(out.String(), "in-tty-42 ff") }); err != nil {
			t.Fatalf("no answer from the shell: %v; output %q", err, out.String())
		}
		if _, err := io.WriteString(typist, "exit 7\r"); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil || code != 7 {
			t.Fatalf("sh on a tty: code %d, err %v; want 7", code, err)
		}
	})

	t.Run("output streams while the command runs; tokens are good once", func(t *testing.T) {
		stdin, feed := io.Pipe()
		defer feed.Close()
		out := &watchedBuffer{}
		done := make(chan error, 1)
		go func() {
			_, err := d.Run(ctx, drivers.OneOff{DynoSpec: runSpec("echo first; read x; echo got $x"), Stdin: stdin, Stdout: out})
			done <- err
		}()
		// The command waits for a line the test sends only once it saw the first
		// line: the output came before the command ended.
		if err := poll(t, time.Minute, func() bool { return out.String() == "first\n" }); err != nil {
			t.Fatalf("no live output: %v; output %q", err, out.String())
		}
		svc := oneOffService(t, c, instance)
		token := ""
		for _, kv := range svc.Spec.TaskTemplate.ContainerSpec.Env {
			if v, ok := strings.CutPrefix(kv, "MANIFOLD_RENDEZVOUS_TOKEN="); ok {
				token = v
			}
		}
		if len(token) != 64 {
			t.Fatalf("rendezvous token %d hex digits, want 64 (256 bits)", len(token))
		}
		for k, v := range svc.Spec.Labels {
			if strings.Contains(v, token) {
				t.Errorf("label %s holds the token", k)
			}
		}
		unknown := make([]byte, 32)
		_, _ = rand.Read(unknown)
		for name, tok := range map[string]string{"reused": token, "unknown": hex.EncodeToString(unknown)} {
			resp, err := http.Get("http://" + listen + "/rendezvous/" + tok)
			if err != nil {
				t.Fatalf("%s token: %v", name, err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s token: %s, want 404", name, resp.Status)
			}
		}
		if _, err := io.WriteString(feed, "second\n"); err != nil {
			t.Fatal(err)
		}
		_ = feed.Close()
		if err := <-done; err != nil || out.String() != "first\ngot second\n" {
			t.Fatalf("run: err %v, output %q; want first, got second", err, out.String())
		}
	})

	t.Run("a one-off on the non-manager node", func(t *testing.T) {
		setAvailability(t, c, c.Manager(), dockerswarm.NodeAvailabilityDrain)
		defer setAvailability(t, c, c.Manager(), dockerswarm.NodeAvailabilityActive)
		var out bytes.Buffer
		code, err := d.Run(ctx, drivers.OneOff{DynoSpec: runSpec("echo $NODE; cat"), Stdin: strings.NewReader("from-stdin\n"), Stdout: &out})
		if err != nil || code != 0 {
			t.Fatalf("run: code %d, err %v", code, err)
		}
		if want := c.Nodes[1].ID + "\nfrom-stdin\n"; out.String() != want {
			t.Fatalf("output %q, want %q (the worker's node ID, then stdin)", out.String(), want)
		}
	})

	t.Run("an unreachable endpoint fails the one-off and removes its service", func(t *testing.T) {
		closed := "http://" + net.JoinHostPort(c.HostAddr, freePort(t, c.HostAddr))
		instance := randomName()
		nd, err := swarm.New(ctx, swarm.Options{
			Logs: &sink{}, Logger: slog.New(slog.DiscardHandler), Host: c.Manager().Host, Instance: instance,
			SlugListen: net.JoinHostPort(c.HostAddr, "0"), RelistInterval: 300 * time.Millisecond,
			RendezvousURL: closed, RendezvousTimeout: 3 * time.Second,
		})
		if err != nil {
			t.Fatalf("swarm.New: %v", err)
		}
		defer nd.Close()
		code, err := nd.Run(ctx, drivers.OneOff{DynoSpec: runSpec("echo never"), Stdout: io.Discard})
		if !errors.Is(err, swarm.ErrRendezvous) || code != -1 {
			t.Fatalf("run: code %d, err %v; want -1 and ErrRendezvous", code, err)
		}
		for _, want := range []string{"hello/test", "run.1", "(v1)", closed} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		list, err := c.Manager().Client.ServiceList(ctx, dockerswarm.ServiceListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.Spec.Labels[swarm.LabelInstance] == instance && s.Spec.Labels[swarm.LabelOneOff] != "" {
				t.Errorf("one-off service %s left after it failed", s.Spec.Name)
			}
		}
	})

	t.Run("Close ends a one-off that waits on stdin", func(t *testing.T) {
		instance := randomName()
		nd, err := swarm.New(ctx, swarm.Options{
			Logs: &sink{}, Logger: slog.New(slog.DiscardHandler), Host: c.Manager().Host, Instance: instance,
			SlugListen: net.JoinHostPort(c.HostAddr, "0"), RelistInterval: 300 * time.Millisecond,
		})
		if err != nil {
			t.Fatalf("swarm.New: %v", err)
		}
		defer nd.Close()
		stdin, typist := io.Pipe() // never written nor closed: a user who walked away
		defer typist.Close()
		out := &watchedBuffer{}
		ran := make(chan error, 1)
		go func() {
			_, err := nd.Run(ctx, drivers.OneOff{DynoSpec: runSpec("echo waiting; cat"), Stdin: stdin, Stdout: out})
			ran <- err
		}()
		if err := poll(t, time.Minute, func() bool { return out.String() == "waiting\n" }); err != nil {
			t.Fatalf("the one-off did not start: %v; output %q", err, out.String())
		}
		closed := make(chan error, 1)
		go func() { closed <- nd.Close() }()
		select {
		case <-closed:
		case <-ctx.Done():
			t.Fatal("Close did not return while a one-off waited on stdin")
		}
		if err := <-ran; !errors.Is(err, swarm.ErrClosed) {
			t.Fatalf("run: %v; want ErrClosed", err)
		}
		list, err := c.Manager().Client.ServiceList(ctx, dockerswarm.ServiceListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.Spec.Labels[swarm.LabelInstance] == instance && s.Spec.Labels[swarm.LabelOneOff] != "" {
				t.Errorf("one-off service %s left after Close", s.Spec.Name)
			}
		}
	})
}

// watchedBuffer is a buffer a test reads while a one-off writes it.
type watchedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *watchedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *watchedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func abbrev(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// oneOffService is the instance's one one-off service.
func oneOffService(t *testing.T, c *swarmtest.Cluster, instance string) dockerswarm.Service {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	list, err := c.Manager().Client.ServiceList(ctx, dockerswarm.ServiceListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found []dockerswarm.Service
	for _, s := range list {
		if s.Spec.Labels[swarm.LabelInstance] == instance && s.Spec.Labels[swarm.LabelOneOff] == "true" {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d one-off services of instance %s, want 1", len(found), instance)
	}
	return found[0]
}

// setAvailability drains a node or makes it active again, through the manager.
func setAvailability(t *testing.T, c *swarmtest.Cluster, node *swarmtest.Node, availability dockerswarm.NodeAvailability) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	mgr := c.Manager().Client
	n, _, err := mgr.NodeInspectWithRaw(ctx, node.ID)
	if err != nil {
		t.Fatal(err)
	}
	n.Spec.Availability = availability
	if err := mgr.NodeUpdate(ctx, node.ID, n.Version, n.Spec); err != nil {
		t.Fatalf("node %s availability %s: %v", node.Name, availability, err)
	}
}
