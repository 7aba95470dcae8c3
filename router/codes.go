package router

import (
	"net/http"
	"strconv"
)

// Code is one of Heroku's router error codes (H10, H11, …). The zero Code means the
// request was served without a router error.
type Code string

// The router error codes manifold produces, with Heroku's meaning. Each is logged as
// `at=error code=… desc="…"` and answered with a plain error page (status 503 unless
// noted on the code).
const (
	// H10: the app has no web dyno up and at least one crashed.
	H10 Code = "H10"
	// H11: the app's in-flight and waiting requests reached the backlog bound.
	H11 Code = "H11"
	// H12: no first byte from the dyno within Options.FirstByteTimeout (30 s).
	H12 Code = "H12"
	// H13: the dyno closed the connection without sending a response.
	H13 Code = "H13"
	// H14: the app has no web dynos (scaled to zero, or none up yet).
	H14 Code = "H14"
	// H15: no data in either direction for Options.IdleTimeout (55 s) while a
	// response or a WebSocket was streaming.
	H15 Code = "H15"
	// H18: the dyno closed the connection while the request body was being sent,
	// or before the response body was complete.
	H18 Code = "H18"
	// H21: every dyno refused the connection (each is then quarantined).
	H21 Code = "H21"
	// H27: the client went away before the response was complete; status 499.
	H27 Code = "H27"
	// H28: the client did not send a complete request: its body stalled for
	// Options.IdleTimeout; status 499, as Heroku logs it.
	H28 Code = "H28"
)

// Desc is Heroku's short description of the code, as in the log line's desc="…".
func (c Code) Desc() string {
	switch c {
	case H10:
		return "App crashed"
	case H11:
		return "Backlog too deep"
	case H12:
		return "Request timeout"
	case H13:
		return "Connection closed without response"
	case H14:
		return "No web dynos running"
	case H15:
		return "Idle connection"
	case H18:
		return "Server Request Interrupted"
	case H21:
		return "Backend connection refused"
	case H27:
		return "Client Request Interrupted"
	case H28:
		return "Client Connection Idle"
	}
	return "Unknown error"
}

// Status is the HTTP status the router answers (and logs) with for the code: 499 for
// the client-side codes, 503 for the others.
func (c Code) Status() int {
	switch c {
	case H27, H28:
		return 499
	}
	return http.StatusServiceUnavailable
}

// errorPage is the plain page a client sees for a router error. Like Heroku's, it
// names no internals beyond the code, which the app owner finds in `manifold logs`.
func errorPage(c Code) []byte {
	return []byte("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Application Error</title></head>\n" +
		"<body><h1>Application error</h1>\n<p>An error occurred in the application and your page could not be served. " +
		"Its owner can find the details in the app's logs (router code " + string(c) + ", " + c.Desc() + ").</p></body></html>\n")
}

// writeError answers a request with the router error page for c.
func writeError(w http.ResponseWriter, c Code) int {
	page := errorPage(c)
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(page)))
	h.Set("Cache-Control", "no-cache, no-store")
	w.WriteHeader(c.Status())
	n, _ := w.Write(page)
	return n
}

// noSuchApp is the page for a Host no app claims.
const noSuchApp = "no such app\n"
