package router

import (
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// via is the router's Via entry, as Heroku's router adds `1.1 vegur`.
const via = "1.1 manifold"

// hopHeaders are meaningful for a single connection only and never forwarded.
var hopHeaders = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// removeHopHeaders deletes the hop-by-hop headers of h, including those named by its
// Connection header.
func removeHopHeaders(h http.Header) {
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			switch {
			case token == "", strings.EqualFold(token, "close"), strings.EqualFold(token, "keep-alive"), strings.EqualFold(token, "upgrade"):
				// Handled by the fixed list below; no canonicalisation needed.
			default:
				delete(h, http.CanonicalHeaderKey(token))
			}
		}
	}
	if len(h) <= len(hopHeaders) {
		// A small map (a dyno's response has three or four headers) is cheaper to
		// walk once than to probe nine times.
		for k := range h {
			if isHopHeader(k) {
				delete(h, k)
			}
		}
		return
	}
	for _, k := range hopHeaders {
		delete(h, k)
	}
}

// isHopHeader reports whether the canonical header name k is one of hopHeaders.
func isHopHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
		"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// isUpgrade reports whether the request asks to switch protocols (WebSocket) and
// returns the protocol.
func isUpgrade(h http.Header) (string, bool) {
	up := h["Upgrade"]
	if len(up) == 0 || up[0] == "" {
		return "", false
	}
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "upgrade") {
				return up[0], true
			}
		}
	}
	return "", false
}

// prepareHeaders rewrites the request's headers in place into those the dyno gets:
// hop-by-hop headers removed, Heroku's forwarding headers set. The request is the
// router's own from here on (nothing else reads its headers), which saves a copy of
// the header map per request. It reports whether the request is an upgrade.
func (ex *exchange) prepareHeaders(req *http.Request, arrival time.Time) bool {
	h := req.Header
	proto, upgrade := "", false
	if req.ProtoMajor == 1 {
		proto, upgrade = isUpgrade(h)
	}
	removeHopHeaders(h)
	if upgrade {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{proto}
	}

	clientIP := req.RemoteAddr
	if host, _, err := net.SplitHostPort(clientIP); err == nil {
		clientIP = host
	}
	if prior := h["X-Forwarded-For"]; len(prior) > 0 {
		ex.fwd = strings.Join(prior, ", ") + ", " + clientIP
	} else {
		ex.fwd = clientIP
	}
	ex.xff[0] = ex.fwd
	h["X-Forwarded-For"] = ex.xff[:]

	if req.TLS != nil {
		ex.proto[0] = "https"
	} else {
		ex.proto[0] = "http"
	}
	h["X-Forwarded-Proto"] = ex.proto[:]

	if info, ok := req.Context().Value(listenerKey{}).(*listenerInfo); ok {
		h["X-Forwarded-Port"] = info.port
	} else if addr, ok := req.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		ex.port[0] = portOf(addr.String(), ex.proto[0])
		h["X-Forwarded-Port"] = ex.port[:]
	} else {
		ex.port[0] = portOf(req.Host, ex.proto[0])
		h["X-Forwarded-Port"] = ex.port[:]
	}

	ex.start[0] = strconv.FormatInt(arrival.UnixMilli(), 10)
	h["X-Request-Start"] = ex.start[:]

	if id := h["X-Request-Id"]; len(id) == 1 && validRequestID(id[0]) {
		ex.reqID = id[0]
	} else {
		ex.reqID = newRequestID()
		ex.requestID[0] = ex.reqID
		h["X-Request-Id"] = ex.requestID[:]
	}

	if prior := h["Via"]; len(prior) > 0 {
		h["Via"] = []string{strings.Join(prior, ", ") + ", " + via}
	} else {
		h["Via"] = ex.r.via
	}
	return upgrade
}

// validRequestID reports whether a client's X-Request-Id is kept: 20 to 200
// characters of [A-Za-z0-9+=/-], as Heroku accepts.
func validRequestID(id string) bool {
	if len(id) < 20 || len(id) > 200 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '+', c == '=', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

// newRequestID returns a random version-4 UUID. It needs to be unique, not secret, so
// the fast runtime generator serves.
func newRequestID() string {
	const hexDigits = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	var raw [16]byte
	for i := range 8 {
		raw[i] = byte(hi >> (56 - 8*i))
		raw[8+i] = byte(lo >> (56 - 8*i))
	}
	raw[6] = raw[6]&0x0f | 0x40
	raw[8] = raw[8]&0x3f | 0x80
	var out [36]byte
	j := 0
	for i, c := range raw {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hexDigits[c>>4], hexDigits[c&0x0f]
		j += 2
	}
	return string(out[:])
}
