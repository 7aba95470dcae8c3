package logs_test

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// httpsReceiver is an HTTPS drain endpoint that parses every batch and checks
// Heroku's headers. fail decides the status of a request (0 = 200).
type httpsReceiver struct {
	t      *testing.T
	server *httptest.Server
	fail   func(attempt int, frameID string, lines []logs.Line) int

	mu       sync.Mutex
	attempts int
	frameIDs map[string]int // attempts per frame id
	accepted []logs.Line    // lines of batches answered 2xx, once per frame id
	tokens   map[string]bool
	problems []string
}

var frameIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
var tokenPattern = regexp.MustCompile(`^d\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

func newHTTPSReceiver(t *testing.T, fail func(int, string, []logs.Line) int) *httpsReceiver {
	r := &httpsReceiver{t: t, fail: fail, frameIDs: map[string]int{}, tokens: map[string]bool{}}
	r.server = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.server.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	r.server.StartTLS()
	t.Cleanup(r.server.Close)
	return r
}

func (r *httpsReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.attempts++
	problem := func(format string, args ...any) {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
		w.WriteHeader(http.StatusTeapot)
	}
	if err != nil {
		problem("read body: %v", err)
		return
	}
	user, pass, _ := req.BasicAuth()
	frameID := req.Header.Get("Logplex-Frame-Id")
	token := req.Header.Get("Logplex-Drain-Token")
	switch {
	case req.Method != http.MethodPost || req.URL.Path != "/logs":
		problem("%s %s", req.Method, req.URL.Path)
		return
	case req.Header.Get("Content-Type") != "application/logplex-1":
		problem("content type %q", req.Header.Get("Content-Type"))
		return
	case user != "user" || pass != "secret":
		problem("basic auth %q %q", user, pass)
		return
	case !frameIDPattern.MatchString(frameID):
		problem("frame id %q", frameID)
		return
	case !tokenPattern.MatchString(token):
		problem("drain token %q", token)
		return
	case len(body) > 110<<10:
		problem("batch of %d bytes", len(body))
		return
	}
	r.tokens[token] = true
	var lines []logs.Line
	for rest := body; len(rest) > 0; {
		l, n, err := logs.ParseFrame(rest)
		if err != nil {
			problem("frame %d: %v", len(lines), err)
			return
		}
		lines = append(lines, l)
		rest = rest[n:]
	}
	if count := req.Header.Get("Logplex-Msg-Count"); count != strconv.Itoa(len(lines)) {
		problem("Logplex-Msg-Count %s for %d frames", count, len(lines))
		return
	}
	r.frameIDs[frameID]++
	if status := r.fail(r.attempts, frameID, lines); status != 0 {
		w.WriteHeader(status)
		return
	}
	r.accepted = append(r.accepted, lines...)
}

func (r *httpsReceiver) caPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.server.Certificate().Raw})
}

func (r *httpsReceiver) url() string {
	return strings.Replace(r.server.URL, "https://", "https://user:secret@", 1) + "/logs"
}

func (r *httpsReceiver) snapshot() (accepted []logs.Line, frameIDs map[string]int, problems []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	frameIDs = map[string]int{}
	for k, v := range r.frameIDs {
		frameIDs[k] = v
	}
	return append([]logs.Line(nil), r.accepted...), frameIDs, append([]string(nil), r.problems...)
}

func TestHTTPSDrainBatchesAndRetries(t *testing.T) {
	t.Parallel()
	receiver := newHTTPSReceiver(t, func(attempt int, _ string, _ []logs.Line) int {
		if attempt <= 2 {
			return http.StatusServiceUnavailable // the first batch is retried twice
		}
		return 0
	})
	p := newPlex(t, logs.Options{MaxBackoff: 200 * time.Millisecond})
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "h", URL: receiver.url(), CAPEM: receiver.caPEM()}}); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	long := strings.Repeat("x", 200)
	for i := range n {
		p.Publish(line(i, "web."+strconv.Itoa(i%3+1), fmt.Sprintf("%d %s", i, long)))
		if i%500 == 0 {
			// Keep under the drain buffer: wait (bounded) until the drain caught up.
			waitStats(t, p, "the drain to catch up", func(s logs.DrainStats) bool { return s.Buffered < 500 })
		}
	}
	st := waitStats(t, p, "every line sent", func(s logs.DrainStats) bool { return s.Sent == n })
	if st.Dropped != 0 || st.Retries < 2 || !st.Connected || !tokenPattern.MatchString(st.Token) {
		t.Errorf("stats = %+v", st)
	}
	accepted, frameIDs, problems := receiver.snapshot()
	if len(problems) > 0 {
		t.Fatalf("receiver saw problems: %q", problems)
	}
	if len(accepted) != n {
		t.Fatalf("receiver accepted %d lines, want %d", len(accepted), n)
	}
	for i, l := range accepted {
		want := line(i, "web."+strconv.Itoa(i%3+1), fmt.Sprintf("%d %s", i, long))
		if !l.Time.Equal(want.Time.Truncate(time.Microsecond)) || l.App != "shop" || l.Env != "production" || l.Dyno != want.Dyno || l.Source != "app" || l.Text != want.Text {
			t.Fatalf("line %d = %+v, want %+v", i, l, want)
		}
	}
	retried := 0
	for _, attempts := range frameIDs {
		if attempts == 3 {
			retried++
		}
	}
	if retried != 1 || len(frameIDs) < 2 {
		t.Errorf("frame ids %v: want one batch tried 3 times (same id) and several batches", frameIDs)
	}
}

func TestHTTPSDrainDropsRejectedBatches(t *testing.T) {
	t.Parallel()
	receiver := newHTTPSReceiver(t, func(_ int, _ string, lines []logs.Line) int {
		for _, l := range lines {
			if l.Text == "reject me" {
				return http.StatusBadRequest
			}
		}
		return 0
	})
	p := newPlex(t, logs.Options{})
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "h", URL: receiver.url(), CAPEM: receiver.caPEM()}}); err != nil {
		t.Fatal(err)
	}
	p.Publish(line(0, "web.1", "reject me"))
	waitStats(t, p, "the batch rejected", func(s logs.DrainStats) bool { return s.Rejected == 1 })
	p.Publish(line(1, "web.1", "take me"))
	st := waitStats(t, p, "the next batch sent", func(s logs.DrainStats) bool { return s.Sent == 1 })
	if st.Dropped != 1 || st.Retries != 0 || st.Published != 2 {
		t.Errorf("stats = %+v", st)
	}
	accepted, _, problems := receiver.snapshot()
	if len(problems) > 0 || len(accepted) != 1 || accepted[0].Text != "take me" {
		t.Errorf("accepted %+v, problems %q", accepted, problems)
	}
}

func TestHTTPSDrainNeedsTrustedCertificate(t *testing.T) {
	t.Parallel()
	receiver := newHTTPSReceiver(t, func(int, string, []logs.Line) int { return 0 })
	p := newPlex(t, logs.Options{MaxBackoff: 100 * time.Millisecond})
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "h", URL: receiver.url()}}); err != nil {
		t.Fatal(err)
	}
	p.Publish(line(0, "web.1", "x"))
	st := waitStats(t, p, "a refused certificate", func(s logs.DrainStats) bool { return s.Retries >= 1 })
	if st.Sent != 0 || !strings.Contains(st.LastError, "certificate") || strings.Contains(st.LastError, "secret") {
		t.Errorf("stats = %+v (the error must name the certificate and hide the password)", st)
	}
}
