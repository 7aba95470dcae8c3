package process

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/logs"
)

func TestFollowerSplitsLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		flush  bool
		want   []string
		offset int
	}{
		{"lines", []string{"a\nb\n"}, false, []string{"a", "b"}, 4},
		{"partial waits", []string{"a\nbc"}, false, []string{"a"}, 2},
		{"partial completed", []string{"a\nb", "c\n"}, false, []string{"a", "bc"}, 5},
		{"flush at exit", []string{"a\nbc"}, true, []string{"a", "bc"}, 4},
		{"crlf", []string{"a\r\n"}, false, []string{"a"}, 3},
		{"long line split", []string{strings.Repeat("x", 10) + "\n"}, false, []string{"xxxx", "xxxx", "xx"}, 11},
		{"exactly max", []string{"yyyy\nz\n"}, false, []string{"yyyy", "z"}, 7},
		{"empty line", []string{"\n"}, false, []string{""}, 1},
		// The \n of a line of exactly max bytes may come in a later read: it still ends
		// that line, as when both arrive at once, and makes no empty line of its own.
		{"exactly max, newline later", []string{"yyyy", "\nz\n"}, false, []string{"yyyy", "z"}, 7},
		{"exactly max then more", []string{"yyyy", "zz\n"}, false, []string{"yyyy", "zz"}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.log")
			var got []string
			fl := newFollower(path, 0, 4, 0, func(s string) { got = append(got, s) }, func(string, error) {})
			defer fl.close()
			for _, w := range tc.writes {
				f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				f.WriteString(w)
				f.Close()
				fl.pump(false)
			}
			fl.pump(tc.flush)
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || fl.offset() != int64(tc.offset) {
				t.Fatalf("lines %q offset %d, want %q %d", got, fl.offset(), tc.want, tc.offset)
			}
		})
	}
}

// A pump after close (the follow goroutine ticking once more while down closes the
// follower) must not reopen the output file: nothing would close it again.
func TestFollowerClosedStaysClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.log")
	if err := os.WriteFile(path, []byte("a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var got []string
	fl := newFollower(path, 0, 64, 0, func(s string) { got = append(got, s) }, func(string, error) {})
	fl.pump(false)
	fl.close()
	if err := os.WriteFile(path, []byte("a\nb\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fl.pump(false)
	fl.mu.Lock()
	open := fl.file != nil
	fl.mu.Unlock()
	if open {
		fl.file.Close()
		t.Fatal("pump reopened the output file after close: its descriptor leaks")
	}
	if len(got) != 1 || got[0] != "a" {
		t.Fatalf("lines %q, want [a]", got)
	}
}

// A dyno that writes far more than MaxLogBytes: every line arrives in order, and the
// output file takes about MaxLogBytes of disk, not all it was written.
func TestOutputFileStaysBounded(t *testing.T) {
	const maxLog = 64 << 10
	h := newHarness(t, Options{MaxLogBytes: maxLog})
	const lines = 4000 // 4000 × ~100 bytes: 400 kB written
	command := fmt.Sprintf(`i=0; pad=%s; while [ $i -lt %d ]; do i=$((i+1)); echo "line $i $pad"; done; exec sleep 60`,
		strings.Repeat("p", 90), lines)
	dyno := h.start(h.spec("worker", 1, command, nil))
	h.sink.waitLine(t, "worker.1", logs.SourceApp, fmt.Sprintf("line %d ", lines))
	got := h.sink.texts("worker.1", logs.SourceApp)
	if len(got) != lines {
		t.Fatalf("%d lines published, want %d", len(got), lines)
	}
	for i, text := range got {
		if !strings.HasPrefix(text, fmt.Sprintf("line %d ", i+1)) {
			t.Fatalf("line %d is %q", i+1, text)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(h.opts.StateDir, dyno.ID+".log"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Size < lines*90 || st.Blocks*512 > 2*maxLog+64<<10 {
		t.Fatalf("output file: apparent %d bytes, %d on disk; want all written, about %d on disk", st.Size, st.Blocks*512, maxLog)
	}
	waitState(t, h.d, dyno.ID, drivers.StateUp, nil)
	if err := h.d.Stop(context.Background(), dyno.ID); err != nil {
		t.Fatal(err)
	}
}
