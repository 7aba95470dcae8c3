package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/ledger"
)

const crashEnv = "MANIFOLD_LEDGER_CRASH_PATH"

// TestCrashChild is the subprocess of TestSurvivesKill: it appends (and settles)
// releases in a loop, printing each version once Append returned, until killed.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		return // only meaningful as TestSurvivesKill's child
	}
	l, err := ledger.Open(path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	ctx := context.Background()
	for i := range 100000 {
		r, err := l.Append(ctx, ledger.Release{App: "crash", Env: "prod", SlugKey: fmt.Sprintf("sha256:%064d", i),
			Config: map[string]string{"I": strconv.Itoa(i), "PAD": strings.Repeat("x", i%2000)}, Description: "Deploy"})
		if err != nil {
			fmt.Println("append:", err)
			os.Exit(4)
		}
		if i%3 == 0 {
			if err := l.SetStatus(ctx, "crash", "prod", r.Version, ledger.StatusSucceeded, ""); err != nil {
				fmt.Println("status:", err)
				os.Exit(5)
			}
		}
		fmt.Printf("acked %d\n", r.Version)
	}
	os.Exit(6)
}

// TestSurvivesKill kills a process with kill -9 in the middle of its appends, three
// times over one file, and checks that every acknowledged release is there and the
// versions run without a gap.
func TestSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	acked := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+path)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stdout)
		roundAcks := 0
		// Kill after a number of acks that differs per round, mid-loop.
		for sc.Scan() && roundAcks < 40+round*17 {
			line := sc.Text()
			v, ok := strings.CutPrefix(line, "acked ")
			if !ok {
				t.Fatalf("child: %s", line)
			}
			n, err := strconv.Atoi(v)
			if err != nil || n != acked+1 {
				t.Fatalf("child acked %q after v%d", v, acked)
			}
			acked, roundAcks = n, roundAcks+1
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		if roundAcks == 0 {
			t.Fatal("child acknowledged nothing")
		}
		// Reopen: every acknowledged version is there, none is damaged, no gap.
		l, err := ledger.Open(path)
		if err != nil {
			t.Fatalf("reopen after kill -9 (round %d): %v", round, err)
		}
		list, err := l.List("crash", "prod")
		if err != nil {
			t.Fatal(err)
		}
		if len(list) < acked {
			t.Fatalf("round %d: %d releases after the kill, %d were acknowledged", round, len(list), acked)
		}
		for i, r := range list {
			if want := len(list) - i; r.Version != want || r.Config["I"] == "" {
				t.Fatalf("round %d: position %d holds v%d (%v), want v%d", round, i, r.Version, r.Config["I"], want)
			}
		}
		// Releases appended but not yet acknowledged when the kill came count too.
		acked = len(list)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
