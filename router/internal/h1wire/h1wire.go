// Package h1wire holds the HTTP/1.1 message syntax that the router's server (h1,
// reading clients' requests) and its dyno client (reading dynos' responses) share,
// so that both sides frame and bound messages the same way.
package h1wire

import (
	"bytes"
	"strconv"
)

// MaxHeadBytes bounds a message's start line and headers, and a chunked body's
// trailer section (net/http's default is 1 MB; nginx's 32 KB).
const MaxHeadBytes = 64 << 10

// HeadEnd returns the length of the head at the start of buf, up to and including
// its first empty line ("\r\n" or a bare "\n", RFC 9112 2.2), or 0 when buf holds no
// empty line. The first empty line ends the head even when a "\r\n\r\n" comes later:
// what follows it is a body or the next message, never more head.
func HeadEnd(buf []byte) int {
	end := 0
	if i := bytes.Index(buf, []byte("\n\r\n")); i >= 0 {
		end = i + 3
		buf = buf[:i+1]
	}
	if i := bytes.Index(buf, []byte("\n\n")); i >= 0 {
		end = i + 2
	}
	return end
}

// ParseContentLength parses a Content-Length value: digits only (RFC 9110 8.6), so
// that no sign ("+5", "-0") or other form is read one way here and another way by a
// peer.
func ParseContentLength(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil
}

// IsCanonical reports whether a header name is in canonical form already (as clients
// and dynos send nearly all of them), which saves CanonicalHeaderKey's allocation.
func IsCanonical(k string) bool {
	upper := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return false
		}
		upper = c == '-'
	}
	return true
}
