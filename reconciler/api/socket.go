package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"
)

// maxSocketPath is the longest path a unix socket may have everywhere (sun_path is
// 104 bytes on macOS, 108 on Linux, with its NUL).
const maxSocketPath = 103

// SocketName is the API socket's name in the state directory.
const SocketName = "manifold.sock"

// ListenSocket listens on a unix socket at path, mode 0600 from its first moment: it
// is made in a fresh 0700 directory beside path, then renamed into place. A stale
// socket (nobody answers on it) is replaced; a live one is an error (another daemon).
// The caller closes the listener; closing removes the socket.
func ListenSocket(path string) (net.Listener, error) {
	if conn, err := net.DialTimeout("unix", path, time.Second); err == nil {
		conn.Close()
		return nil, fmt.Errorf("api socket %s: another daemon answers on it", path)
	}
	private, err := os.MkdirTemp(filepath.Dir(path), ".mf")
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	defer os.RemoveAll(private)
	tmp := filepath.Join(private, "s")
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("api socket %s: the path is longer than a unix socket's %d bytes: use a shorter --state", path, maxSocketPath)
	}
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	unixLn := ln.(*net.UnixListener)
	unixLn.SetUnlinkOnClose(false) // it is renamed: Close removes path below
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	return &socketListener{UnixListener: unixLn, path: path}, nil
}

type socketListener struct {
	*net.UnixListener
	path string
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	_ = os.Remove(l.path)
	return err
}

// Peer is the process at the other end of a socket connection.
type Peer struct {
	PID int // 0 where the system does not tell
	UID int
}

// PeerFilter says why a socket peer must be refused ("" lets it in): the process
// driver refuses its own dynos.
type PeerFilter func(Peer) string

// LocalListener wraps the socket's listener: each connection is checked against
// refuse (a refused one is closed at once: the peer's request fails) and carries its
// peer's user as the principal, which ConnContext puts in the request's context.
func LocalListener(ln net.Listener, refuse PeerFilter, logger *slog.Logger) net.Listener {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &localListener{Listener: ln, refuse: refuse, log: logger}
}

type localListener struct {
	net.Listener
	refuse PeerFilter
	log    *slog.Logger
}

// localConn is a socket connection and who is at its other end.
type localConn struct {
	net.Conn
	principal Principal
}

func (l *localListener) Accept() (net.Conn, error) {
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		peer, err := peerOf(conn)
		if err != nil {
			l.log.Error("api socket: peer credentials unknown: connection refused", "err", err)
			conn.Close()
			continue
		}
		if l.refuse != nil {
			if why := l.refuse(peer); why != "" {
				l.log.Warn("api socket: connection refused", "pid", peer.PID, "uid", peer.UID, "why", why)
				conn.Close()
				continue
			}
		}
		return &localConn{Conn: conn, principal: LocalUser(userName(peer.UID))}, nil
	}
}

// ConnContext is the socket's http.Server.ConnContext: requests on a socket
// connection are its peer's.
func ConnContext(ctx context.Context, conn net.Conn) context.Context {
	if lc, ok := conn.(*localConn); ok {
		return WithPrincipal(ctx, lc.principal)
	}
	return ctx
}

// userName names uid as the system does, else "uid N".
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + strconv.Itoa(uid)
}

var errNotUnix = errors.New("not a unix socket connection")

// Loopback reports whether addr (host:port) listens only on the loopback interface:
// 127.0.0.0/8, ::1 or localhost. An empty host (every interface) is not.
func Loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
