package router

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"

	"github.com/manifold-paas/manifold/router/internal/h1wire"
	"golang.org/x/net/http/httpguts"
)

// The dyno's response head is parsed into an http.Response, header map and value
// slice that belong to the dyno connection and are reused for each of its responses
// (http.ReadResponse allocated all of them, and a textproto reader, per response).
// The header values are only valid until the connection goes back to the pool.

// Body framing of a dyno response.
const (
	framingSized   = iota // Content-Length
	framingChunked        // Transfer-Encoding: chunked
	framingClose          // until the dyno closes the connection
)

// upResponse is the reusable response state of one dyno connection.
type upResponse struct {
	resp   http.Response
	header http.Header
	vals   []string
	head   []byte
	body   upBody
}

var errMalformedResponse = errors.New("malformed response head")

// chunkedTE is the TransferEncoding of chunked responses, shared by all of them.
var chunkedTE = []string{"chunked"}

// readResponse reads the dyno's final response head on c, skipping 1xx interim
// responses other than 101 Switching Protocols.
func (c *upConn) readResponse(req *http.Request) (*http.Response, error) {
	for {
		resp, err := c.readOneResponse(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

func (c *upConn) readHeadString() (string, error) {
	br, u := c.br, &c.up
	if _, err := br.Peek(1); err != nil {
		return "", err
	}
	if buf, _ := br.Peek(br.Buffered()); len(buf) > 0 {
		if n := h1wire.HeadEnd(buf); n > 0 {
			head := string(buf[:n])
			_, _ = br.Discard(n)
			return head, nil
		}
	}
	u.head = u.head[:0]
	atLineStart := true
	for {
		line, err := br.ReadSlice('\n')
		if len(u.head)+len(line) > h1wire.MaxHeadBytes {
			return "", fmt.Errorf("response head over %d bytes: %w", h1wire.MaxHeadBytes, errMalformedResponse)
		}
		u.head = append(u.head, line...)
		if errors.Is(err, bufio.ErrBufferFull) {
			atLineStart = false
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(u.head) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		// The end of a line longer than the buffer is not an empty line.
		if atLineStart && (len(line) == 1 || (len(line) == 2 && line[0] == '\r')) {
			return string(u.head), nil
		}
		atLineStart = true
	}
}

func (c *upConn) readOneResponse(req *http.Request) (*http.Response, error) {
	head, err := c.readHeadString()
	if err != nil {
		return nil, err
	}
	u := &c.up
	if u.header == nil {
		u.header = make(http.Header, 16)
	}
	clear(u.header)
	u.vals = u.vals[:0]
	resp := &u.resp
	*resp = http.Response{Header: u.header, Request: req}

	line, rest, _ := strings.Cut(head, "\n")
	line = strings.TrimSuffix(line, "\r")
	proto, status, _ := strings.Cut(line, " ")
	major, minor, ok := http.ParseHTTPVersion(proto)
	if !ok || major != 1 {
		return nil, fmt.Errorf("status line %q: %w", line, errMalformedResponse)
	}
	code, _, _ := strings.Cut(status, " ")
	n, err := strconv.Atoi(code)
	if len(code) != 3 || err != nil || n < 100 {
		return nil, fmt.Errorf("status line %q: %w", line, errMalformedResponse)
	}
	resp.Proto, resp.ProtoMajor, resp.ProtoMinor = proto, major, minor
	resp.Status, resp.StatusCode = status, n

	h := u.header
	lastKey := ""
	for {
		line, rest, _ = strings.Cut(rest, "\n")
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && lastKey != "" {
			// Obsolete line folding: joined with a space, as textproto does.
			folded := strings.Trim(line, " \t")
			if !httpguts.ValidHeaderFieldValue(folded) {
				return nil, fmt.Errorf("header %s: invalid folded value: %w", lastKey, errMalformedResponse)
			}
			vv := h[lastKey]
			vv[len(vv)-1] += " " + folded
			continue
		}
		colon := strings.IndexByte(line, ':')
		if colon <= 0 {
			return nil, fmt.Errorf("header line %q: %w", line, errMalformedResponse)
		}
		key, value := line[:colon], strings.Trim(line[colon+1:], " \t")
		// Names and values with control characters (a bare CR, NUL) are refused, as
		// net/textproto did before this parser: the router's own server writes
		// header values through as they are, and a bare CR reaching a client can
		// split the response there.
		if !httpguts.ValidHeaderFieldName(key) {
			return nil, fmt.Errorf("header name %q: %w", key, errMalformedResponse)
		}
		if !httpguts.ValidHeaderFieldValue(value) {
			return nil, fmt.Errorf("header %s: invalid value: %w", key, errMalformedResponse)
		}
		if !h1wire.IsCanonical(key) {
			key = http.CanonicalHeaderKey(key)
		}
		lastKey = key
		if vv, ok := h[key]; ok {
			h[key] = append(vv, value)
			continue
		}
		u.vals = append(u.vals, value)
		i := len(u.vals)
		h[key] = u.vals[i-1 : i : i]
	}

	// Connection persistence.
	keepAlive := false
	for _, v := range h["Connection"] {
		for token := range strings.SplitSeq(v, ",") {
			token = strings.TrimSpace(token)
			switch {
			case strings.EqualFold(token, "close"):
				resp.Close = true
			case strings.EqualFold(token, "keep-alive"):
				keepAlive = true
			}
		}
	}
	if minor == 0 && !keepAlive {
		resp.Close = true
	}

	// Framing, as RFC 9112 6.3 and net/http read it.
	body := &u.body
	*body = upBody{c: c, resp: resp}
	resp.Body = body
	cl := int64(-1)
	if v := h["Content-Length"]; len(v) > 0 {
		for _, other := range v[1:] {
			if strings.TrimSpace(other) != strings.TrimSpace(v[0]) {
				return nil, fmt.Errorf("conflicting Content-Length %q: %w", v, errMalformedResponse)
			}
		}
		s := strings.TrimSpace(v[0])
		var ok bool
		if cl, ok = h1wire.ParseContentLength(s); !ok {
			return nil, fmt.Errorf("Content-Length %q: %w", v[0], errMalformedResponse)
		}
	}
	switch {
	case n < 200 || n == http.StatusNoContent || n == http.StatusNotModified:
		resp.ContentLength = 0
		if n == http.StatusNotModified && cl >= 0 {
			resp.ContentLength = cl
		}
		resp.Body = http.NoBody
		return resp, nil
	case req.Method == http.MethodHead:
		resp.ContentLength = cl
		resp.Body = http.NoBody
		return resp, nil
	}
	if te, ok := h["Transfer-Encoding"]; ok && minor >= 1 {
		if len(te) != 1 || !strings.EqualFold(strings.TrimSpace(te[0]), "chunked") {
			return nil, fmt.Errorf("Transfer-Encoding %q: %w", te, errMalformedResponse)
		}
		delete(h, "Transfer-Encoding")
		if _, both := h["Content-Length"]; both {
			// Framed both ways (RFC 9112 6.3: chunked wins): the dyno may have meant
			// the length, so nothing after this response is trusted on the connection.
			delete(h, "Content-Length")
			resp.Close = true
		}
		resp.TransferEncoding = chunkedTE
		resp.ContentLength = -1
		body.framing = framingChunked
		body.chunked = httputil.NewChunkedReader(c.br)
		if declared := h["Trailer"]; len(declared) > 0 {
			resp.Trailer = http.Header{}
			for _, v := range declared {
				for k := range strings.SplitSeq(v, ",") {
					if k = strings.TrimSpace(k); k != "" {
						resp.Trailer[http.CanonicalHeaderKey(k)] = nil
					}
				}
			}
		}
		return resp, nil
	}
	if cl >= 0 {
		resp.ContentLength = cl
		body.framing, body.remaining = framingSized, cl
		return resp, nil
	}
	resp.ContentLength = -1
	resp.Close = true
	body.framing = framingClose
	return resp, nil
}

// upBody reads a dyno response's body from its connection.
type upBody struct {
	c         *upConn
	resp      *http.Response
	framing   int
	remaining int64
	chunked   io.Reader
	err       error // sticky
}

func (b *upBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	var n int
	var err error
	switch b.framing {
	case framingSized:
		if b.remaining == 0 {
			b.err = io.EOF
			return 0, io.EOF
		}
		if int64(len(p)) > b.remaining {
			p = p[:b.remaining]
		}
		n, err = b.c.br.Read(p)
		b.remaining -= int64(n)
		switch {
		case b.remaining == 0:
			err = io.EOF
		case errors.Is(err, io.EOF):
			err = io.ErrUnexpectedEOF
		}
	case framingChunked:
		n, err = b.chunked.Read(p)
		if errors.Is(err, io.EOF) {
			err = b.readTrailer()
		}
	default:
		n, err = b.c.br.Read(p)
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// readTrailer reads a chunked body's trailer fields into resp.Trailer, up to the
// final empty line.
func (b *upBody) readTrailer() error {
	size := 0
	for {
		line, err := b.c.br.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read chunked trailer: %w", err)
		}
		if size += len(line); size > h1wire.MaxHeadBytes {
			return fmt.Errorf("trailer over %d bytes: %w", h1wire.MaxHeadBytes, errMalformedResponse)
		}
		s := strings.TrimRight(string(line), "\r\n")
		if s == "" {
			return io.EOF
		}
		k, v, ok := strings.Cut(s, ":")
		if !ok {
			return fmt.Errorf("trailer line %q: %w", s, errMalformedResponse)
		}
		if b.resp.Trailer == nil {
			b.resp.Trailer = http.Header{}
		}
		b.resp.Trailer.Add(strings.TrimSpace(k), strings.Trim(v, " \t"))
	}
}

// Close does nothing: the connection's release decides whether it is reused.
func (b *upBody) Close() error { return nil }
