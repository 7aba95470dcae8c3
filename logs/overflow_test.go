package logs_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// countingReceiver is a syslog receiver that counts the app's lines it gets and adds
// up the counts of the L10 lines it gets, as a user checking a drain would.
type countingReceiver struct {
	ln net.Listener
	wg sync.WaitGroup

	mu       sync.Mutex
	lines    uint64
	reported uint64
	problems []string
}

func startCountingReceiver(t *testing.T) *countingReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &countingReceiver{ln: ln}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r.wg.Add(1)
			go func() {
				defer r.wg.Done()
				r.serve(conn)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *countingReceiver) serve(conn net.Conn) {
	defer conn.Close()
	in := bufio.NewReaderSize(conn, 64<<10)
	for {
		digits, err := in.ReadSlice(' ')
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				r.problem("read: %v", err)
			}
			return
		}
		n, err := strconv.Atoi(string(digits[:len(digits)-1]))
		if err != nil || n <= 0 {
			r.problem("bad frame length %q", digits)
			return
		}
		msg := make([]byte, len(digits)+n)
		copy(msg, digits)
		if _, err := io.ReadFull(in, msg[len(digits):]); err != nil {
			r.problem("short frame: %v", err)
			return
		}
		line, _, err := logs.ParseFrame(msg)
		if err != nil {
			r.problem("parse frame: %v", err)
			return
		}
		r.mu.Lock()
		if line.Dyno == "logplex" {
			var dropped uint64
			if _, err := fmt.Sscanf(line.Text, "Error L10 (output buffer overflow): %d messages dropped since", &dropped); err != nil {
				r.problems = append(r.problems, fmt.Sprintf("bad L10 line %q", line.Text))
			}
			r.reported += dropped
		} else {
			r.lines++
		}
		r.mu.Unlock()
	}
}

func (r *countingReceiver) problem(format string, args ...any) {
	r.mu.Lock()
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func (r *countingReceiver) counts() (lines, reported uint64, problems []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lines, r.reported, append([]string(nil), r.problems...)
}

// TestEveryDroppedLineIsReported: a worker prints 500,000 lines of 96 bytes as fast
// as it can into one syslog drain. Under sustained overflow an L10 line is itself
// queued into the full buffer and may be evicted; its count must then reach the
// receiver in a later L10. What the receiver gets, lines plus the L10 counts, is
// exactly what the app wrote, and the drain's counters say the same.
func TestEveryDroppedLineIsReported(t *testing.T) {
	t.Parallel()
	const written = 500_000
	receiver := startCountingReceiver(t)
	// An L10 line every millisecond instead of every second: the publisher outruns the
	// drain in this process for well under a second, and the reports must be many for
	// some to be pushed out of the full buffer, the case that used to lose counts.
	p := newPlex(t, logs.Options{ReportInterval: time.Millisecond})
	if err := p.SetDrains("shop", "production", []logs.DrainConfig{{Name: "d", URL: "syslog+tcp://" + receiver.ln.Addr().String()}}); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("x", 96)
	for range written {
		p.Publish(logs.Line{App: "shop", Env: "production", Source: logs.SourceApp, Dyno: "worker.1", Text: text})
	}
	var lines, reported uint64
	var problems []string
	eventually(t, 60*time.Second, "every line delivered or reported", func() error {
		lines, reported, problems = receiver.counts()
		if lines+reported < written && len(problems) == 0 {
			return fmt.Errorf("%d lines + %d reported of %d", lines, reported, written)
		}
		return nil
	})
	if len(problems) > 0 {
		t.Fatalf("receiver: %v", problems)
	}
	if lines+reported != written {
		t.Fatalf("the receiver got %d lines and L10 counts adding up to %d: %d + %d != %d written",
			lines, reported, lines, reported, written)
	}
	if reported == 0 {
		t.Fatal("no overflow: the test did not exercise L10")
	}
	st := waitStats(t, p, "an idle drain", func(s logs.DrainStats) bool { return s.Buffered == 0 && s.Reported == reported })
	if st.Published != written || st.Sent != lines || st.Dropped != reported || st.Rejected != 0 {
		t.Errorf("drain stats %+v; want published %d, sent %d, dropped = reported = %d", st, written, lines, reported)
	}
	t.Logf("%d lines delivered, %d dropped and reported in L10 lines", lines, reported)
}
