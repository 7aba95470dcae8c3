package logs_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// waitStats polls (bounded) until the only drain's stats satisfy ok.
func waitStats(t *testing.T, p *logs.Plex, what string, ok func(logs.DrainStats) bool) logs.DrainStats {
	t.Helper()
	var found logs.DrainStats
	eventually(t, 20*time.Second, what, func() error {
		all := p.DrainStats()
		if len(all) != 1 || !ok(all[0]) {
			return fmt.Errorf("drain stats %+v", all)
		}
		found = all[0]
		return nil
	})
	return found
}

func TestSyslogDrainToRsyslog(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"syslog+tcp", "syslog+tls"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			var pki *testPKI
			var ca []byte
			if scheme == "syslog+tls" {
				k := newPKI(t, t.TempDir())
				pki, ca = &k, k.CAPEM
			}
			receiver := startRsyslog(t, pki)
			p := newPlex(t, logs.Options{})
			err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "papertrail", URL: scheme + "://" + receiver.addr(), CAPEM: ca}})
			if err != nil {
				t.Fatal(err)
			}
			sent := []logs.Line{
				line(0, "web.1", "GET / 200"),
				line(1, "router", "at=info method=GET path=/ host=shop.example.com status=200"),
				{Time: base, App: "shop", Env: "production", Source: logs.SourceAPI, Dyno: "api", Text: "Deploy 1a2b3c4 by alice@example.com"},
				line(3, "worker.2", "two\nlines"),
				line(4, "web.1", strings.Repeat("long ", 3000)), // cut to 10 KB
			}
			for _, l := range sent {
				p.Publish(l)
			}
			got := receiver.waitMessages(len(sent))
			for i, want := range sent {
				r := got[i]
				if r.Hostname != "production" || r.AppName != "shop" || r.ProcID != want.Dyno || r.MsgID != want.Source || r.Pri != "190" {
					t.Errorf("message %d header = %+v, want production shop %s %s 190", i, r, want.Dyno, want.Source)
				}
				if wantTime := want.Time.UTC().Format("2006-01-02T15:04:05.000000-07:00"); r.Time != wantTime {
					t.Errorf("message %d time = %s, want %s", i, r.Time, wantTime)
				}
			}
			if got[0].Msg != "GET / 200" || got[3].Msg != "two#012lines" {
				t.Errorf("messages = %q, %q", got[0].Msg, got[3].Msg)
			}
			if !strings.HasSuffix(got[4].Msg, "[line truncated: 15000 bytes]") || len(got[4].Msg) > logs.DefaultMaxLineBytes {
				t.Errorf("long line arrived as %d bytes ending %q", len(got[4].Msg), got[4].Msg[len(got[4].Msg)-40:])
			}
			st := waitStats(t, p, "5 sent", func(s logs.DrainStats) bool { return s.Sent == 5 })
			if !st.Connected || st.Dropped != 0 || st.Published != 5 || st.Buffered != 0 {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestSyslogTLSVerifiesServer(t *testing.T) {
	t.Parallel()
	pki := newPKI(t, t.TempDir())
	receiver := startRsyslog(t, &pki)
	other := newPKI(t, t.TempDir()) // a CA that did not sign the receiver's certificate
	p := newPlex(t, logs.Options{MaxBackoff: 200 * time.Millisecond})
	url := "syslog+tls://" + receiver.addr()
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "d", URL: url, CAPEM: other.CAPEM}}); err != nil {
		t.Fatal(err)
	}
	p.Publish(line(0, "web.1", "kept while the CA is wrong"))
	st := waitStats(t, p, "a failed handshake", func(s logs.DrainStats) bool { return s.Retries >= 2 })
	if st.Connected || st.Sent != 0 || !strings.Contains(st.LastError, "certificate") {
		t.Errorf("stats with the wrong CA = %+v", st)
	}

	// Fixing the CA takes effect at once, without restarting anything else.
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "d", URL: url, CAPEM: pki.CAPEM}}); err != nil {
		t.Fatal(err)
	}
	p.Publish(line(1, "web.1", "after the CA is fixed"))
	got := receiver.waitMessages(1)
	if got[0].Msg != "after the CA is fixed" {
		t.Errorf("received %q", got[0].Msg)
	}
}

// TestSyslogDrainReceiverDown stops the receiver for a while: Publish goes on, the
// overflow is dropped, counted and reported as L10, and once the receiver is back the
// buffered lines arrive whole and in order.
func TestSyslogDrainReceiverDown(t *testing.T) {
	t.Parallel()
	receiver := startRsyslog(t, nil)
	// A ring larger than all the test publishes: an L10 line reported while the 3000
	// lines are being published must not be pushed out of the ring by them, or the
	// sum of the L10 lines read back would miss its drops.
	p := newPlex(t, logs.Options{MaxBackoff: 200 * time.Millisecond, RingLines: 10000})
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "d", URL: "syslog+tcp://" + receiver.addr()}}); err != nil {
		t.Fatal(err)
	}
	seq := 0
	publish := func(n int) {
		for range n {
			p.Publish(line(seq, "web.1", "seq "+strconv.Itoa(seq)))
			seq++
		}
	}
	publish(10)
	receiver.waitMessages(10)

	receiver.stop()
	waitStats(t, p, "the drain to notice the receiver left", func(s logs.DrainStats) bool { return !s.Connected })
	publish(3000) // twice the buffer and more: returns at once
	st := waitStats(t, p, "drops", func(s logs.DrainStats) bool { return s.Dropped > 0 })
	if st.Published != st.Sent+st.Dropped+uint64(st.Buffered) {
		t.Errorf("while down: published %d != sent %d + dropped %d + buffered %d", st.Published, st.Sent, st.Dropped, st.Buffered)
	}
	var l10 logs.Line
	eventually(t, 20*time.Second, "an L10 line in the app's stream", func() error {
		for _, l := range p.Recent(logs.Filter{App: "shop", Source: logs.SourceHeroku, Dyno: "logplex"}, 0) {
			l10 = l
		}
		if l10.Text == "" {
			return errors.New("none yet")
		}
		return nil
	})
	if !strings.HasPrefix(l10.Text, "Error L10 (output buffer overflow): ") || !strings.HasSuffix(l10.Text, ".") {
		t.Fatalf("the L10 line reads %q", l10.Text)
	}

	receiver.start()
	// Every drop is reported: the L10 lines the drain delivered add up to Dropped (an
	// L10 line can itself be pushed out of the full buffer; the next one counts it).
	st2 := waitStats(t, p, "every drop reported", func(s logs.DrainStats) bool {
		return s.Buffered == 0 && s.Connected && s.Reported == s.Dropped
	})
	if st2.Published != st2.Sent+st2.Dropped {
		t.Errorf("after: published %d != sent %d + dropped %d", st2.Published, st2.Sent, st2.Dropped)
	}
	// rsyslog writes what it got a little later: read until the lines and the L10
	// counts it wrote reach what the drain says it delivered.
	var seqs []int
	var reported uint64
	sawL10 := false
	eventually(t, 20*time.Second, "what the drain delivered written by rsyslog", func() error {
		seqs, reported, sawL10 = nil, 0, false
		for _, r := range receiver.messages() {
			if r.ProcID == "logplex" {
				var n uint64
				if _, err := fmt.Sscanf(r.Msg, "Error L10 (output buffer overflow): %d messages dropped since", &n); err != nil {
					t.Fatalf("bad L10 line %q: %v", r.Msg, err)
				}
				sawL10, reported = true, reported+n
				continue
			}
			n, err := strconv.Atoi(strings.TrimPrefix(r.Msg, "seq "))
			if err != nil || r.AppName != "shop" || r.ProcID != "web.1" {
				t.Fatalf("corrupt message after reconnect: %+v", r)
			}
			seqs = append(seqs, n)
		}
		if uint64(len(seqs)) < st2.Sent || reported < st2.Dropped {
			return fmt.Errorf("%d lines and %d reported drops so far", len(seqs), reported)
		}
		return nil
	})
	if !sawL10 {
		t.Error("no L10 line reached the drain")
	}
	// In order, without a gap before the outage, and ending with the newest line
	// (the buffer drops its oldest lines first).
	if !slices.IsSorted(seqs) || seqs[9] != 9 || len(seqs) < 10+logs.DefaultDrainBuffer/2 || seqs[len(seqs)-1] != seq-1 {
		t.Errorf("received %d lines, first %v last %v; want in order, the buffer's worth, ending at %d", len(seqs), seqs[:10], seqs[len(seqs)-1], seq-1)
	}
	if uint64(len(seqs)) != st2.Sent || reported != st2.Dropped {
		t.Errorf("receiver got %d lines and L10 lines counting %d drops; drain says %d sent, %d dropped", len(seqs), reported, st2.Sent, st2.Dropped)
	}
}

// TestStalledDrainBlocksNothing: a receiver that accepts and never reads fills its
// socket; its drain drops and counts, while another drain of the same app and a tail
// get every line.
func TestStalledDrainBlocksNothing(t *testing.T) {
	t.Parallel()
	stalled, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			conn, err := stalled.Accept()
			if err != nil {
				return
			}
			held <- conn // keep it open, never read
		}
	}()
	t.Cleanup(func() {
		for len(held) > 0 {
			(<-held).Close()
		}
	})
	receiver := startRsyslog(t, nil)
	p := newPlex(t, logs.Options{IOTimeout: 500 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	err = p.SetDrains("shop", "production", []logs.DrainConfig{
		{Name: "healthy", URL: "syslog+tcp://" + receiver.addr()},
		{Name: "stalled", URL: "syslog+tcp://" + stalled.Addr().String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	tail := p.Tail(t.Context(), logs.Filter{App: "shop", Dyno: "web"}, 0)
	const n = 20000
	payload := strings.Repeat("y", 500) // 10 MB in all: more than any socket buffer
	tailed := 0
	for i := range n {
		p.Publish(line(i, "web.1", payload))
		for len(tail) > 0 { // read the tail as a quick reader would
			<-tail
			tailed++
		}
		if i%500 == 499 {
			// Keep the healthy drain within its buffer (bounded wait).
			eventually(t, 20*time.Second, "the healthy drain within its buffer", func() error {
				if st := p.DrainStats(); st[0].Buffered >= 300 {
					return fmt.Errorf("%d buffered", st[0].Buffered)
				}
				return nil
			})
		}
	}
	stats := func() (healthy, stuck logs.DrainStats) { all := p.DrainStats(); return all[0], all[1] }
	eventually(t, 20*time.Second, "the healthy drain flushed and the stalled one dropping", func() error {
		if h, s := stats(); h.Buffered != 0 || s.Dropped == 0 {
			return fmt.Errorf("healthy %+v, stalled %+v", h, s)
		}
		return nil
	})
	h, s := stats()
	if h.Name != "healthy" || h.Dropped != 0 || h.Sent < n {
		t.Errorf("healthy drain: %+v", h)
	}
	if s.Name != "stalled" || s.Sent >= n || s.Published != s.Sent+s.Dropped+uint64(s.Buffered) {
		t.Errorf("stalled drain: %+v", s)
	}
	if tailed != n {
		t.Errorf("tail got %d lines, want %d", tailed, n)
	}
}
