package reconciler_test

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler"
)

// TestCommandLineKeepsTheWordsTyped runs each command line through a real /bin/sh -c,
// as the drivers do, and checks that the command saw exactly the words typed.
func TestCommandLineKeepsTheWordsTyped(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string // after printf '[%s]'
	}{
		{"plain", []string{"one", "two"}},
		{"spaces", []string{"one two", "three"}},
		{"double quotes", []string{`echo "one two"`}},
		{"single quotes", []string{"it's", "'quoted'"}},
		{"dollar", []string{"$HOME", "${PATH}", "$(id)"}},
		{"semicolon and pipe", []string{"a;b", "c|d", "e&&f"}},
		{"empty string", []string{"", "x", ""}},
		{"globs and backslashes", []string{"*", `a\b`, "~", "#not a comment"}},
		{"newline", []string{"line one\nline two"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			line := reconciler.CommandLine(append([]string{"printf", "[%s]"}, tt.args...))
			out, err := exec.Command("/bin/sh", "-c", line).Output()
			if err != nil {
				t.Fatalf("sh -c %q: %v", line, err)
			}
			want := "[" + strings.Join(tt.args, "][") + "]"
			if string(out) != want {
				t.Errorf("sh -c %q printed %q, want %q", line, out, want)
			}
		})
	}
}

// TestCommandLineOfOneArgumentIsTheCommandLine: `manifold run "rake a && rake b"` runs
// both, as heroku run does.
func TestCommandLineOfOneArgumentIsTheCommandLine(t *testing.T) {
	t.Parallel()
	line := reconciler.CommandLine([]string{"echo one && echo two; exit 4"})
	out, err := exec.Command("/bin/sh", "-c", line).Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 4 {
		t.Fatalf("exit: %v, want status 4", err)
	}
	if string(out) != "one\ntwo\n" {
		t.Errorf("printed %q", out)
	}
	if got := reconciler.CommandLine([]string{"sh", "-c", "exit 4"}); got != "sh -c 'exit 4'" {
		t.Errorf("CommandLine = %q", got)
	}
}
