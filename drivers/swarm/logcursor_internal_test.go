package swarm

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// A step of a cursor test: a new stream begins (begin set), or a line comes.
type cursorStep struct {
	begin     bool
	wantSince int // seconds after t0, when begin
	task      string
	at        int // seconds after t0
	seq       uint64
	want      lineVerdict
	wantLost  uint64
}

func TestLogCursor(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	sec := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	tests := []struct {
		name  string
		steps []cursorStep
	}{
		{"resume skips the numbers delivered and delivers the rest", []cursorStep{
			{begin: true, wantSince: 0},
			{task: "a", at: 1, seq: 1, want: lineNew},
			{task: "a", at: 2, seq: 2, want: lineNew},
			{begin: true, wantSince: 2},
			{task: "a", at: 2, seq: 2, want: lineSeen},
			{task: "a", at: 3, seq: 3, want: lineNew},
		}},
		{"a line the engine reads twice is skipped", []cursorStep{
			{begin: true},
			{task: "a", at: 1, seq: 1, want: lineNew},
			{task: "a", at: 1, seq: 1, want: lineSeen},
			{task: "a", at: 2, seq: 2, want: lineNew},
		}},
		{"a gap in a stream's first new line is a loss", []cursorStep{
			{begin: true},
			{task: "a", at: 1, seq: 1, want: lineNew},
			{task: "a", at: 2, seq: 2, want: lineNew},
			{begin: true, wantSince: 2},
			{task: "a", at: 9, seq: 7, want: lineAfterLoss, wantLost: 4},
			{task: "a", at: 9, seq: 8, want: lineNew},
		}},
		{"a gap after a delivered line follows again, then counts", []cursorStep{
			{begin: true},
			{task: "a", at: 1, seq: 1, want: lineNew},
			{task: "a", at: 2, seq: 5, want: lineGap},
			{begin: true, wantSince: 1},
			{task: "a", at: 1, seq: 1, want: lineSeen},
			{task: "a", at: 2, seq: 2, want: lineNew},
		}},
		{"since is the oldest last line of the tasks that wrote lately", []cursorStep{
			{begin: true},
			{task: "a", at: 10, seq: 1, want: lineNew},
			{task: "b", at: 100, seq: 1, want: lineNew},
			{task: "c", at: 130, seq: 1, want: lineNew},
			{begin: true, wantSince: 100}, // a is quiet since 120 s before c's line
			{task: "c", at: 131, seq: 2, want: lineNew},
		}},
		{"a quiet task whose numbers skip makes the next stream begin earlier", []cursorStep{
			{begin: true},
			{task: "a", at: 10, seq: 1, want: lineNew},
			{task: "b", at: 100, seq: 1, want: lineNew},
			{begin: true, wantSince: 100},
			{task: "a", at: 101, seq: 3, want: lineGap},
			{begin: true, wantSince: 10},
			{task: "a", at: 10, seq: 1, want: lineSeen},
			{task: "a", at: 50, seq: 2, want: lineNew},
			{task: "a", at: 101, seq: 3, want: lineNew},
		}},
		{"unnumbered lines: only those after the delivered ones at the same time", []cursorStep{
			{begin: true},
			{task: "a", at: 1, want: lineNew},
			{task: "a", at: 2, want: lineNew},
			{task: "a", at: 2, want: lineNew},
			{begin: true, wantSince: 2},
			{task: "a", at: 2, want: lineSeen},
			{task: "a", at: 2, want: lineSeen},
			{task: "a", at: 2, want: lineNew},
			{task: "a", at: 3, want: lineNew},
		}},
		{"a new task's first number is taken as it is", []cursorStep{
			{begin: true},
			{task: "a", at: 1, seq: 40, want: lineNew},
			{task: "a", at: 2, seq: 41, want: lineNew},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newLogCursor(t0)
			for i, s := range tt.steps {
				if s.begin {
					if got := c.begin(); !got.Equal(sec(s.wantSince)) {
						t.Fatalf("step %d: since %s, want %s", i, got.Sub(t0), sec(s.wantSince).Sub(t0))
					}
					continue
				}
				v, lost, _ := c.accept(s.task, sec(s.at), s.seq)
				if v != s.want || lost != s.wantLost {
					t.Fatalf("step %d (%s at %d #%d): verdict %d lost %d, want %d lost %d", i, s.task, s.at, s.seq, v, lost, s.want, s.wantLost)
				}
			}
		})
	}
}

func TestUnstamp(t *testing.T) {
	tests := []struct {
		in   string
		seq  uint64
		text string
	}{
		{"mf#42 hello world", 42, "hello world"},
		{"mf#7 ", 7, ""},
		{"mf#7", 7, ""},
		{"hello", 0, "hello"},
		{"mf#x hello", 0, "mf#x hello"},
		{"mf#0 hello", 0, "mf#0 hello"},
		{"mf#3 mf#4 nested", 3, "mf#4 nested"},
	}
	for _, tt := range tests {
		seq, text := unstamp(tt.in)
		if seq != tt.seq || text != tt.text {
			t.Errorf("unstamp(%q) = %d %q, want %d %q", tt.in, seq, text, tt.seq, tt.text)
		}
	}
}

// TestLiveness: a task is expected once it sent a heartbeat, silent after its
// allowance, doubled by each stall until heard again, and forgotten when it ended.
func TestLiveness(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 17, 0, 0, 0, time.UTC)
	l := newLiveness()
	l.heard("quiet", false, t0) // no heartbeat: not expected
	l.heard("a", true, t0)
	if got := l.silent(t0.Add(logSilence)); len(got) != 0 {
		t.Fatalf("silent at the allowance: %v", got)
	}
	if got := l.silent(t0.Add(logSilence + time.Second)); len(got) != 1 || got[0] != "a" {
		t.Fatalf("silent after the allowance: %v, want [a]", got)
	}
	l.stalled("a")
	t1 := t0.Add(time.Minute)
	l.begin(t1) // a new stream: a fresh allowance, twice as long
	if got := l.silent(t1.Add(2 * logSilence)); len(got) != 0 {
		t.Fatalf("silent within the doubled allowance: %v", got)
	}
	if got := l.silent(t1.Add(2*logSilence + time.Second)); len(got) != 1 {
		t.Fatalf("not silent after the doubled allowance: %v", got)
	}
	for range 20 {
		l.stalled("a")
	}
	if l.allowance["a"] != logMaxSilence {
		t.Fatalf("allowance %s, want the cap %s", l.allowance["a"], logMaxSilence)
	}
	l.heard("a", true, t1)
	if l.allowance["a"] != logSilence {
		t.Fatalf("allowance after a heartbeat %s, want %s", l.allowance["a"], logSilence)
	}
	l.forget("a")
	if got := l.silent(t1.Add(time.Hour)); len(got) != 0 {
		t.Fatalf("a forgotten task is silent: %v", got)
	}
}

// TestStampOutputHeartbeat: the boot script's heartbeat period is logHeartbeat.
func TestStampOutputHeartbeat(t *testing.T) {
	want := "while sleep " + strconv.Itoa(int(logHeartbeat/time.Second)) + "; do echo \"" + heartbeat + "\" >&2"
	if !strings.Contains(stampOutput, want) || !strings.HasPrefix(bootScript, stampOutput) {
		t.Fatalf("stampOutput does not send %q every logHeartbeat, or bootScript does not begin with it", heartbeat)
	}
}
