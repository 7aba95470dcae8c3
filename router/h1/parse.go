package h1

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/manifold-paas/manifold/router/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// chunkedTE is the TransferEncoding of requests with a chunked body.
var chunkedTE = []string{"chunked"}

// parse fills c.req from a request head. It returns a status and message for a
// request the server refuses, or 0.
func (c *clientConn) parse(head, remote string) (int, string) {
	req := c.req
	clear(c.header)
	c.vals = c.vals[:0]
	line, rest, _ := strings.Cut(head, "\n")
	line = strings.TrimSuffix(line, "\r")
	method, line, ok1 := strings.Cut(line, " ")
	uri, proto, ok2 := strings.Cut(line, " ")
	if !ok1 || !ok2 || method == "" || uri == "" || !validMethod(method) {
		return http.StatusBadRequest, "malformed request line"
	}
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok {
		return http.StatusBadRequest, "malformed HTTP version"
	}
	if major != 1 {
		return http.StatusHTTPVersionNotSupported, "HTTP version not supported"
	}
	for i := 0; i < len(uri); i++ {
		if uri[i] <= ' ' || uri[i] == 0x7f {
			return http.StatusBadRequest, "malformed request target"
		}
	}
	c.url = url.URL{}
	if uri[0] == '/' && strings.IndexByte(uri, '%') < 0 && strings.IndexByte(uri, '#') < 0 {
		// Origin form without escapes: no need for the full parser.
		c.url.Path, c.url.RawQuery, _ = strings.Cut(uri, "?")
		if c.url.RawQuery == "" && strings.HasSuffix(uri, "?") {
			c.url.ForceQuery = true
		}
	} else {
		u, err := url.ParseRequestURI(uri)
		if err != nil {
			return http.StatusBadRequest, "malformed request target"
		}
		c.url = *u
	}

	h := c.header
	for {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return http.StatusBadRequest, "malformed header line"
		}
		key, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		if !httpguts.ValidHeaderFieldName(key) || !httpguts.ValidHeaderFieldValue(value) {
			// Also refuses obsolete line folding: a line starting with a space.
			return http.StatusBadRequest, "invalid header " + strconv.Quote(key)
		}
		if !h1wire.IsCanonical(key) {
			key = http.CanonicalHeaderKey(key)
		}
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
			continue
		}
		c.vals = append(c.vals, value)
		n := len(c.vals)
		h[key] = c.vals[n-1 : n : n]
	}

	host := ""
	if hv := h["Host"]; len(hv) > 1 {
		return http.StatusBadRequest, "too many Host headers"
	} else if len(hv) == 1 {
		host = hv[0]
		delete(h, "Host")
	}
	if c.url.Host != "" {
		host = c.url.Host
	} else if host == "" && minor >= 1 {
		return http.StatusBadRequest, "missing required Host header"
	}
	if !httpguts.ValidHostHeader(host) {
		return http.StatusBadRequest, "malformed Host header"
	}

	// Connection options, and keep-alive: HTTP/1.1 by default, HTTP/1.0 when asked.
	keepAlive, closeIt := false, false
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			switch {
			case strings.EqualFold(token, "close"):
				closeIt = true
			case strings.EqualFold(token, "keep-alive"):
				keepAlive = true
			}
		}
	}
	c.closeIt = closeIt || (minor == 0 && !keepAlive)

	// Body framing: chunked wins over Content-Length (which is then dropped, RFC 9112
	// 6.3); anything else is refused rather than guessed at (request smuggling).
	contentLength := int64(0)
	chunked := false
	if te, ok := h["Transfer-Encoding"]; ok {
		if minor == 0 || len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return http.StatusNotImplemented, "unsupported Transfer-Encoding"
		}
		chunked = true
		contentLength = -1
		if _, both := h["Content-Length"]; both {
			// A message with both is suspect: chunked wins and the connection is not
			// reused.
			delete(h, "Content-Length")
			c.closeIt = true
		}
	} else if cl := h["Content-Length"]; len(cl) > 0 {
		for _, v := range cl[1:] {
			if v != cl[0] {
				return http.StatusBadRequest, "conflicting Content-Length"
			}
		}
		n, ok := h1wire.ParseContentLength(cl[0])
		if !ok {
			return http.StatusBadRequest, "malformed Content-Length"
		}
		contentLength = n
	}

	c.expect = false
	if ev, ok := h["Expect"]; ok {
		if len(ev) != 1 || !strings.EqualFold(ev[0], "100-continue") {
			return http.StatusExpectationFailed, "unsupported Expect"
		}
		c.expect = minor >= 1 && contentLength != 0
	}

	req.Method = method
	req.URL = &c.url
	req.Proto = proto
	req.ProtoMajor, req.ProtoMinor = major, minor
	req.Header = h
	req.ContentLength = contentLength
	req.TransferEncoding = nil
	req.Close = c.closeIt
	req.Host = host
	req.RemoteAddr = remote
	req.RequestURI = uri
	req.Body = http.NoBody
	if chunked {
		req.TransferEncoding = chunkedTE
	}
	if contentLength != 0 {
		c.body.reset(contentLength, chunked)
		req.Body = &c.body
	}
	return 0, ""
}

// validMethod reports whether m is an HTTP token.
func validMethod(m string) bool {
	for i := 0; i < len(m); i++ {
		if !httpguts.IsTokenRune(rune(m[i])) {
			return false
		}
	}
	return true
}
