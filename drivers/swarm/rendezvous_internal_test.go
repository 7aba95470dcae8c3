package swarm

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// TestRendezvousEndpoint speaks to the slug server's listener as a one-off's task
// does: the waited-for token is upgraded and its connection handed over, both ways;
// the same token again, an unknown one and one whose wait ended are 404.
func TestRendezvousEndpoint(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rv := newRendezvous(slog.New(slog.DiscardHandler))
	server := newSlugServer(listener, rv)
	go server.serve(slog.New(slog.DiscardHandler))
	t.Cleanup(func() { _ = server.close() })
	addr := listener.Addr().String()

	token := newRendezvousToken()
	if len(token) != 2*rendezvousTokenBytes {
		t.Fatalf("token %d hex digits, want %d", len(token), 2*rendezvousTokenBytes)
	}
	wait := rv.expect(token)
	conn, status := dialRendezvous(t, addr, token)
	if status != http.StatusSwitchingProtocols {
		t.Fatalf("waited-for token: %d, want 101", status)
	}
	var attached net.Conn
	select {
	case attached = <-wait.conns:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not handed to the waiting Run")
	}
	rv.stop(wait)
	defer attached.Close()
	if _, err := io.WriteString(conn, "from the task\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(attached).ReadString('\n'); err != nil || line != "from the task\n" {
		t.Fatalf("Run read %q, %v", line, err)
	}
	if _, err := io.WriteString(attached, "to the task\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := conn.ReadString('\n'); err != nil || line != "to the task\n" {
		t.Fatalf("task read %q, %v", line, err)
	}

	stopped := newRendezvousToken()
	rv.stop(rv.expect(stopped))
	for name, tok := range map[string]string{"reused": token, "unknown": newRendezvousToken(), "no longer waited for": stopped, "empty": ""} {
		if _, status := dialRendezvous(t, addr, tok); status != http.StatusNotFound {
			t.Errorf("%s token: %d, want 404", name, status)
		}
	}
}

// rendezvousConn is the task's end: reads go through the reader that read the answer.
type rendezvousConn struct {
	net.Conn
	*bufio.Reader
}

func (c rendezvousConn) Read(p []byte) (int, error) { return c.Reader.Read(p) }

func dialRendezvous(t *testing.T, addr, token string) (rendezvousConn, int) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "GET /rendezvous/"+token+" HTTP/1.1\r\nHost: "+addr+"\r\nConnection: Upgrade\r\nUpgrade: "+rendezvousUpgrade+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read the answer: %v", err)
	}
	fields := strings.Fields(line)
	if len(fields) < 2 {
		t.Fatalf("answer %q", line)
	}
	status, _ := strconv.Atoi(fields[1])
	for {
		header, err := r.ReadString('\n')
		if err != nil || header == "\r\n" {
			break
		}
	}
	_ = conn.SetDeadline(time.Time{})
	return rendezvousConn{Conn: conn, Reader: r}, status
}

func TestTelnetEncode(t *testing.T) {
	got := telnetEncode(nil, []byte("a\xffb\rc\r\n"))
	if want := []byte("a\xff\xffb\r\x00c\r\x00\n"); !bytes.Equal(got, want) {
		t.Fatalf("encode: %q, want %q", got, want)
	}
}

// TestTelnetDecode feeds what busybox telnetd sends, whole and one byte at a time.
func TestTelnetDecode(t *testing.T) {
	size := drivers.TerminalSize{Rows: 24, Cols: 255}
	naws := []byte{telnetIAC, telnetWILL, telnetOptNAWS, telnetIAC, telnetSB, telnetOptNAWS, 0, 255, 0, 24, telnetIAC, telnetSE}
	for _, tc := range []struct {
		name    string
		in      []byte
		data    string
		replies []byte
	}{
		{name: "plain data", in: []byte("$ ls\r\n"), data: "$ ls\r\n"},
		{name: "escaped 0xFF", in: []byte("a\xff\xffb"), data: "a\xffb"},
		{
			name: "busybox telnetd's opening", in: []byte("\xff\xfd\x01\xff\xfd\x1f\xff\xfb\x01\xff\xfb\x03/app # "), data: "/app # ",
			replies: append([]byte{telnetIAC, telnetWONT, telnetOptEcho}, append(naws, telnetIAC, telnetDO, telnetOptEcho, telnetIAC, telnetDO, telnetOptSGA)...),
		},
		{name: "a request is answered once", in: []byte("\xff\xfd\x18\xff\xfd\x18"), replies: []byte{telnetIAC, telnetWONT, 24}},
		{name: "unknown WILL is refused", in: []byte("\xff\xfb\x05"), replies: []byte{telnetIAC, telnetDONT, 5}},
		{name: "WONT and DONT need no answer", in: []byte("\xff\xfc\x01\xff\xfe\x01x"), data: "x"},
		{name: "subnegotiation and NOP are skipped", in: []byte("a\xff\xfa\x18\x01\xff\xff\xff\xf0b\xff\xf1c"), data: "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data, replies := newTelnetDecoder(size).decode(tc.in, nil, nil)
			if string(data) != tc.data || !bytes.Equal(replies, tc.replies) {
				t.Fatalf("whole: data %q replies %v, want %q %v", data, replies, tc.data, tc.replies)
			}
			decoder := newTelnetDecoder(size)
			data, replies = nil, nil
			for i := range tc.in {
				data, replies = decoder.decode(tc.in[i:i+1], data, replies)
			}
			if string(data) != tc.data || !bytes.Equal(replies, tc.replies) {
				t.Fatalf("byte by byte: data %q replies %v, want %q %v", data, replies, tc.data, tc.replies)
			}
		})
	}
}

// TestOneOffBootScriptExitCode keeps the script's exit code and the driver's in step.
func TestOneOffBootScriptExitCode(t *testing.T) {
	if n := strings.Count(oneOffBootScript, "exit "+strconv.Itoa(exitRendezvousFailed)+";"); n != 2 {
		t.Fatalf("the boot script exits %d in %d places, want 2 (unreachable, refused)", exitRendezvousFailed, n)
	}
}

// TestOpeningTrimmer drops telnetd's opening however it is split, and nothing else.
func TestOpeningTrimmer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   string
	}{
		{"opening then output", []string{"\r\r\n/dev/pts/0\r\n"}, "/dev/pts/0\r\n"},
		{"opening split", []string{"\r", "\r", "\n$ "}, "$ "},
		{"no opening", []string{"$ ", "\r\r\n"}, "$ \r\r\n"},
		{"a prefix of it, then other output", []string{"\r", "\rx"}, "\r\rx"},
		{"a prefix of it, then the end", []string{"\r\r"}, "\r\r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			trimmer := &openingTrimmer{w: &out, opening: []byte(telnetdOpening)}
			for _, w := range tc.writes {
				if n, err := trimmer.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("write %q: %d, %v", w, n, err)
				}
			}
			trimmer.flush()
			if out.String() != tc.want {
				t.Fatalf("output %q, want %q", out.String(), tc.want)
			}
		})
	}
}
