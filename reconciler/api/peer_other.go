//go:build !linux

package api

import (
	"net"
	"os"
)

// peerOf: without SO_PEERCRED, the peer is taken to be the daemon's own user, the
// only one (with root) that the socket's mode 0600 lets connect; its pid is unknown,
// so a PeerFilter sees 0.
func peerOf(conn net.Conn) (Peer, error) {
	if _, ok := conn.(*net.UnixConn); !ok {
		return Peer{}, errNotUnix
	}
	return Peer{UID: os.Getuid()}, nil
}
