package router

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tcpPair returns both ends of a TCP connection on 127.0.0.1.
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	t.Cleanup(func() { _ = client.Close(); _ = server.Close() })
	return client, server
}

// TestSendRecvConn drives a held write and the read after it over real sockets: the
// answer, an answer already sent with the request's arrival, a request bigger than
// the socket buffers (the rest goes out by a blocking write), a peer that closes
// (EOF), one that resets, and one that never answers (the deadline ends the wait).
func TestSendRecvConn(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		request []byte
		small   bool // shrink the socket buffers so the request cannot go out at once
		peer    func(t *testing.T, c net.Conn, n int)
		want    string
		wantErr func(error) bool
	}{
		{
			name:    "answer",
			request: []byte("ping"),
			peer: func(t *testing.T, c net.Conn, n int) {
				readN(t, c, n)
				_, _ = c.Write([]byte("pong"))
			},
			want: "pong",
		},
		{
			name:    "request bigger than the socket buffers",
			request: bytes.Repeat([]byte("x"), 64<<10),
			small:   true,
			peer: func(t *testing.T, c net.Conn, n int) {
				readN(t, c, n)
				_, _ = c.Write([]byte("got it all"))
			},
			want: "got it all",
		},
		{
			name:    "peer closes",
			request: []byte("ping"),
			peer: func(t *testing.T, c net.Conn, n int) {
				readN(t, c, n)
				_ = c.Close()
			},
			wantErr: func(err error) bool { return err == io.EOF },
		},
		{
			name:    "peer resets",
			request: []byte("ping"),
			peer: func(t *testing.T, c net.Conn, n int) {
				readN(t, c, n)
				_ = c.(*net.TCPConn).SetLinger(0)
				_ = c.Close()
			},
			wantErr: func(err error) bool { return errors.Is(err, syscall.ECONNRESET) },
		},
		{
			name:    "peer never answers",
			request: []byte("ping"),
			peer: func(t *testing.T, c net.Conn, n int) {
				readN(t, c, n)
			},
			wantErr: func(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			client, server := tcpPair(t)
			if tc.small {
				_ = client.(*net.TCPConn).SetWriteBuffer(4 << 10)
				_ = server.(*net.TCPConn).SetReadBuffer(4 << 10)
			}
			peerDone := make(chan struct{})
			go func() { defer close(peerDone); tc.peer(t, server, len(tc.request)) }()
			c := newSendRecvConn(client)
			if !c.holdNextWrite() {
				t.Fatal("a TCP connection cannot hold a write")
			}
			if n, err := c.Write(tc.request); err != nil || n != len(tc.request) {
				t.Fatalf("held Write = %d, %v", n, err)
			}
			if c.hold || len(c.pending) != len(tc.request) {
				t.Fatalf("after Write: hold %v, %d bytes pending; want the request held", c.hold, len(c.pending))
			}
			deadline := 10 * time.Second
			if tc.name == "peer never answers" {
				deadline = 100 * time.Millisecond
			}
			_ = client.SetReadDeadline(time.Now().Add(deadline))
			buf := make([]byte, 64)
			var got []byte
			var err error
			for {
				var n int
				n, err = c.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil || (tc.want != "" && len(got) >= len(tc.want)) {
					break
				}
			}
			<-peerDone
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("Read: %q, %v; want the error of %s", got, err, tc.name)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Read: %q, %v; want %q", got, err, tc.want)
			}
			// The connection is a plain one again: the next write goes out at once.
			if _, err := c.Write([]byte("again")); err != nil {
				t.Fatal(err)
			}
			_ = server.SetReadDeadline(time.Now().Add(2 * time.Second))
			if got := readN(t, server, 5); got != "again" {
				t.Fatalf("peer got %q after the exchange; want %q", got, "again")
			}
		})
	}
}

// readN reads exactly n bytes from c.
func readN(t *testing.T, c net.Conn, n int) string {
	t.Helper()
	var b strings.Builder
	if _, err := io.CopyN(&b, c, int64(n)); err != nil {
		t.Errorf("peer read %d of %d bytes: %v", b.Len(), n, err)
	}
	return b.String()
}
