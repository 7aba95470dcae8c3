package logs_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// base is a fixed clock start for lines made by tests.
var base = time.Date(2026, 11, 23, 8, 0, 0, 123456789, time.UTC)

// line makes a line of app "shop" in "production" at base + i ms.
func line(i int, dyno, text string) logs.Line {
	source := logs.SourceApp
	if dyno == "router" {
		source = logs.SourceHeroku
	}
	return logs.Line{
		Time:   base.Add(time.Duration(i) * time.Millisecond),
		App:    "shop",
		Env:    "production",
		Source: source,
		Dyno:   dyno,
		Text:   text,
	}
}

func newPlex(t *testing.T, opts logs.Options) *logs.Plex {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := logs.New(opts)
	t.Cleanup(p.Close)
	return p
}

func texts(lines []logs.Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

func TestRecentKeepsNewestLinesPerStream(t *testing.T) {
	t.Parallel()
	p := newPlex(t, logs.Options{RingLines: 5})
	for i := range 12 {
		p.Publish(line(i, "web.1", fmt.Sprint("prod ", i)))
	}
	staging := line(100, "web.1", "staging 0")
	staging.Env = "staging"
	p.Publish(staging)

	tests := []struct {
		name   string
		filter logs.Filter
		n      int
		want   []string
	}{
		{"ring bound", logs.Filter{App: "shop", Env: "production"}, 0, []string{"prod 7", "prod 8", "prod 9", "prod 10", "prod 11"}},
		{"newest n oldest first", logs.Filter{App: "shop", Env: "production"}, 2, []string{"prod 10", "prod 11"}},
		{"other env has its own ring", logs.Filter{App: "shop", Env: "staging"}, 0, []string{"staging 0"}},
		{"all envs merged by time", logs.Filter{App: "shop"}, 3, []string{"prod 10", "prod 11", "staging 0"}},
		{"unknown app", logs.Filter{App: "nope"}, 0, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := texts(p.Recent(tt.filter, tt.n))
			if strings.Join(got, "|") != strings.Join(tt.want, "|") {
				t.Errorf("Recent = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFilterMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter logs.Filter
		line   logs.Line
		want   bool
	}{
		{logs.Filter{}, line(0, "web.1", ""), true},
		{logs.Filter{Dyno: "web"}, line(0, "web.1", ""), true},
		{logs.Filter{Dyno: "web"}, line(0, "web.12", ""), true},
		{logs.Filter{Dyno: "web"}, line(0, "webhook.1", ""), false},
		{logs.Filter{Dyno: "web"}, line(0, "worker.1", ""), false},
		{logs.Filter{Dyno: "web.1"}, line(0, "web.1", ""), true},
		{logs.Filter{Dyno: "web.1"}, line(0, "web.12", ""), false},
		{logs.Filter{Dyno: "router"}, line(0, "router", ""), true},
		{logs.Filter{Source: logs.SourceApp}, line(0, "router", ""), false},
		{logs.Filter{Source: logs.SourceHeroku}, line(0, "router", ""), true},
		{logs.Filter{App: "shop", Env: "staging"}, line(0, "web.1", ""), false},
		{logs.Filter{App: "blog"}, line(0, "web.1", ""), false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v/%s", tt.filter, tt.line.Dyno), func(t *testing.T) {
			if got := tt.filter.Match(tt.line); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPublishCutsLongLines(t *testing.T) {
	t.Parallel()
	p := newPlex(t, logs.Options{})
	long := strings.Repeat("é", 7680) // 15360 bytes of two-byte runes
	p.Publish(line(0, "web.1", long))
	p.Publish(line(1, "web.1", strings.Repeat("x", logs.DefaultMaxLineBytes)))
	got := p.Recent(logs.Filter{App: "shop"}, 0)
	if len(got) != 2 {
		t.Fatalf("got %d lines, want 2", len(got))
	}
	cut := got[0].Text
	if len(cut) > logs.DefaultMaxLineBytes || !strings.HasSuffix(cut, " [line truncated: 15360 bytes]") {
		t.Errorf("cut line: %d bytes, ends %q", len(cut), cut[len(cut)-40:])
	}
	if !strings.HasPrefix(cut, "éé") || strings.ContainsRune(cut, '\uFFFD') || !utf8Valid(cut) {
		t.Errorf("cut line is not valid UTF-8 or lost its start")
	}
	if got[1].Text != strings.Repeat("x", logs.DefaultMaxLineBytes) {
		t.Errorf("a line of exactly the limit was changed")
	}
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "?") == s }

func TestPublishSetsTimeAndMicroseconds(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 987654321, time.UTC)
	p := newPlex(t, logs.Options{Now: func() time.Time { return now }})
	p.Publish(logs.Line{App: "a", Env: "e", Source: logs.SourceAPI, Dyno: "api", Text: "Deploy 1a2b3c4 by alice@example.com"})
	got := p.Recent(logs.Filter{App: "a"}, 1)
	if len(got) != 1 || !got[0].Time.Equal(now.Truncate(time.Microsecond)) {
		t.Fatalf("Recent = %+v, want one line at %v", got, now.Truncate(time.Microsecond))
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	l := line(0, "web.1", "hello")
	l.Time = time.Date(2026, 11, 23, 9, 0, 0, 123456000, time.FixedZone("CET", 3600))
	var buf bytes.Buffer
	if err := logs.Format(&buf, l, false); err != nil {
		t.Fatal(err)
	}
	if want := "2026-11-23T08:00:00.123456+00:00 app[web.1]: hello\n"; buf.String() != want {
		t.Errorf("Format = %q, want %q", buf.String(), want)
	}
	buf.Reset()
	_ = logs.Format(&buf, l, true)
	want := fmt.Sprintf("\x1b[%dm2026-11-23T08:00:00.123456+00:00 app[web.1]:\x1b[0m hello\n", logs.DynoColor("web.1"))
	if buf.String() != want {
		t.Errorf("Format color = %q, want %q", buf.String(), want)
	}
	if c := logs.DynoColor("web.1"); c < 30 || c > 97 {
		t.Errorf("colour %d is not an ANSI foreground", c)
	}
	colours := map[int]bool{}
	for i := range 20 {
		colours[logs.DynoColor(fmt.Sprint("web.", i))] = true
	}
	if len(colours) < 3 {
		t.Errorf("20 dynos share %d colours", len(colours))
	}
}

func TestTailReplaysThenStreams(t *testing.T) {
	t.Parallel()
	p := newPlex(t, logs.Options{})
	for i := range 5 {
		p.Publish(line(i, "web.1", fmt.Sprint("old ", i)))
	}
	p.Publish(line(5, "worker.1", "old worker"))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := p.Tail(ctx, logs.Filter{App: "shop", Dyno: "web"}, 2)
	p.Publish(line(6, "web.2", "new web.2"))
	p.Publish(line(7, "worker.1", "new worker"))
	other := line(8, "web.1", "other app")
	other.App = "blog"
	p.Publish(other)
	p.Publish(line(9, "web.1", "new web.1"))

	want := []string{"old 3", "old 4", "new web.2", "new web.1"}
	for i, w := range want {
		select {
		case l, ok := <-ch:
			if !ok || l.Text != w {
				t.Fatalf("line %d = %q (open %v), want %q", i, l.Text, ok, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("line %d: nothing after 10s", i)
		}
	}
	cancel()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-ch:
			if !ok {
				return
			}
			t.Fatalf("after cancel: got %q", l.Text)
		case <-deadline:
			t.Fatal("channel not closed 10s after cancel")
		}
	}
}

func TestTailSlowReaderIsCutOff(t *testing.T) {
	t.Parallel()
	p := newPlex(t, logs.Options{TailBuffer: 10})
	slow := p.Tail(context.Background(), logs.Filter{App: "shop"}, 0)
	fast := p.Tail(context.Background(), logs.Filter{App: "shop"}, 0)

	var wg sync.WaitGroup
	var fastGot []string
	wg.Go(func() {
		for l := range fast {
			fastGot = append(fastGot, l.Text)
			if len(fastGot) == 100 {
				return
			}
		}
	})
	for i := range 100 {
		p.Publish(line(i, "web.1", fmt.Sprint(i))) // never waits for the slow reader
		if i%5 == 0 {
			// Let the fast reader keep up: wait (bounded) until it has read what was sent.
			eventually(t, 10*time.Second, "the fast reader caught up", func() error {
				if n := len(fast); n > 0 {
					return fmt.Errorf("%d lines unread", n)
				}
				return nil
			})
		}
	}
	wg.Wait()
	if len(fastGot) != 100 {
		t.Errorf("fast reader got %d lines, want 100", len(fastGot))
	}

	var slowGot []logs.Line
	for l := range slow { // closed after the notice
		slowGot = append(slowGot, l)
	}
	if len(slowGot) != 11 {
		t.Fatalf("slow reader got %d lines, want 10 and the notice", len(slowGot))
	}
	notice := slowGot[10]
	if !strings.HasPrefix(notice.Text, "Error L11 (Tail buffer overflow)") || notice.Source != logs.SourceHeroku || notice.Dyno != "logplex" {
		t.Errorf("notice = %+v", notice)
	}
	if texts(slowGot[:10])[9] != "9" {
		t.Errorf("slow reader's lines = %q", texts(slowGot[:10]))
	}
}

func TestTailEndsOnClose(t *testing.T) {
	t.Parallel()
	p := logs.New(logs.Options{})
	ch := p.Tail(context.Background(), logs.Filter{}, 10)
	p.Publish(line(0, "web.1", "before close"))
	p.Close()
	var got []string
	for l := range ch {
		got = append(got, l.Text)
	}
	if strings.Join(got, "|") != "before close" {
		t.Errorf("got %q", got)
	}
	p.Publish(line(1, "web.1", "after close")) // no panic, no effect
	if n := len(p.Recent(logs.Filter{}, 0)); n != 1 {
		t.Errorf("Recent after Close has %d lines, want 1", n)
	}
	if _, ok := <-p.Tail(context.Background(), logs.Filter{}, 0); ok {
		t.Error("Tail after Close returned an open channel with a line")
	}
}

func TestPublishConcurrent(t *testing.T) {
	t.Parallel()
	p := newPlex(t, logs.Options{RingLines: 100})
	ch := p.Tail(context.Background(), logs.Filter{App: "shop"}, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				p.Publish(line(i, fmt.Sprint("web.", g), "x"))
			}
		})
	}
	wg.Wait()
	if n := len(p.Recent(logs.Filter{App: "shop"}, 0)); n != 100 {
		t.Errorf("ring holds %d lines, want 100", n)
	}
	got := 0
	for range ch {
		got++
	}
	// 1600 lines into a tail of 1024: it is cut off after 1024 lines and the notice.
	if got != logs.DefaultTailBuffer+1 {
		t.Errorf("tail got %d lines, want %d", got, logs.DefaultTailBuffer+1)
	}
}
