package router

import (
	"net/http"
	"strconv"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// log records the request in the app's metrics and publishes its router line into the app's stream, in Heroku's format:
//
//	at=info method=GET path="/" host=… request_id=… fwd="…" dyno=web.1 connect=0ms service=3ms status=200 bytes=2 protocol=http
//	at=error code=H12 desc="Request timeout" method=… (the same fields)
//
// dyno, connect and service are empty when the request never reached a dyno (H10,
// H11, H14), as in Heroku's lines.
func (ex *exchange) log(req *http.Request, rt *route, host string, code Code, reachedDyno bool) {
	now := ex.end
	if now.IsZero() {
		now = ex.r.opts.Now()
	}
	if m := rt.app.metrics; m != nil {
		m.Request(ex.status, code, now.Sub(ex.arrival))
	}
	sink := ex.r.opts.Logs
	if sink == nil {
		return
	}
	b := ex.logBuf[:0]
	if code == "" {
		b = append(b, "at=info"...)
	} else {
		b = append(b, "at=error code="...)
		b = append(b, code...)
		b = append(b, " desc="...)
		b = strconv.AppendQuote(b, code.Desc())
	}
	b = append(b, " method="...)
	b = append(b, req.Method...)
	b = append(b, " path="...)
	path := req.RequestURI
	if path == "" {
		path = req.URL.RequestURI()
	}
	b = strconv.AppendQuote(b, path)
	b = append(b, " host="...)
	b = append(b, host...)
	b = append(b, " request_id="...)
	b = append(b, ex.reqID...)
	b = append(b, " fwd="...)
	b = strconv.AppendQuote(b, ex.fwd)
	b = append(b, " dyno="...)
	if reachedDyno {
		b = append(b, ex.dyno...)
		b = append(b, " connect="...)
		b = strconv.AppendInt(b, ex.connect.Milliseconds(), 10)
		b = append(b, "ms service="...)
		b = strconv.AppendInt(b, max(now.Sub(ex.arrival)-ex.connect, 0).Milliseconds(), 10)
		b = append(b, "ms"...)
	} else {
		b = append(b, " connect= service="...)
	}
	b = append(b, " status="...)
	b = strconv.AppendInt(b, int64(ex.status), 10)
	b = append(b, " bytes="...)
	b = strconv.AppendInt(b, ex.bytes, 10)
	b = append(b, " protocol="...)
	if req.TLS != nil {
		b = append(b, "https"...)
	} else {
		b = append(b, "http"...)
	}
	ex.logBuf = b
	sink.Publish(logs.Line{
		Time:   now.Round(time.Microsecond),
		App:    rt.App,
		Env:    rt.Env,
		Source: logs.SourceHeroku,
		Dyno:   "router",
		Text:   string(b),
	})
}
