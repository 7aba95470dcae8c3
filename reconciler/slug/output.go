package slug

import (
	"bytes"
	"fmt"
	"io"
	"sync"
)

// tailLines is how many lines of output a failed build's error carries.
const tailLines = 20

// tailWriter forwards build output to the caller's writer and keeps the last
// tailLines lines for error messages. Safe for concurrent writes (a step's stdout and
// stderr).
type tailWriter struct {
	mu      sync.Mutex
	out     io.Writer
	partial []byte
	lines   []string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// The caller's writer failing (a closed log stream) must not fail the build.
	_, _ = t.out.Write(p)
	t.partial = append(t.partial, p...)
	for {
		i := bytes.IndexByte(t.partial, '\n')
		if i < 0 {
			break
		}
		t.push(string(bytes.TrimRight(t.partial[:i], "\r")))
		t.partial = t.partial[i+1:]
	}
	// A line without end (a progress bar) must not grow without bound.
	if len(t.partial) > 4096 {
		t.push(string(t.partial))
		t.partial = t.partial[:0]
	}
	return len(p), nil
}

func (t *tailWriter) push(line string) {
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = append(t.lines[:0], t.lines[len(t.lines)-tailLines:]...)
	}
}

// printf writes one line of the builder's own narration.
func (t *tailWriter) printf(format string, args ...any) {
	fmt.Fprintf(t, format+"\n", args...)
}

// tail returns the last lines written (at most tailLines), the unfinished one last.
func (t *tailWriter) tail() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	lines := append([]string(nil), t.lines...)
	if len(t.partial) > 0 {
		lines = append(lines, string(t.partial))
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return lines
}

// FormatSize prints a byte count the way Heroku's build output does: 2.1M, 512K.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1fG", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1fM", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1fK", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%dB", n)
}
