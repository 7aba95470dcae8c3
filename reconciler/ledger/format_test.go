package ledger_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/ledger"
)

func TestFormatTable(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	releases := []ledger.Release{
		{Version: 4, App: "hello", Env: "production", Description: "Rollback to v2", Author: "bob@example.com",
			CreatedAt: now.Add(-3 * time.Minute), Status: ledger.StatusPending, RollbackOf: 2},
		{Version: 3, App: "hello", Env: "production", Description: "Deploy 1a2b3c4", Author: "alice@example.com",
			CreatedAt: now.Add(-2 * time.Hour), Status: ledger.StatusFailed, StatusReason: "release command exited with status 1"},
		{Version: 2, App: "hello", Env: "production", Description: "Set GREETING config vars", Author: "alice@example.com",
			CreatedAt: now.Add(-50 * time.Hour), Status: ledger.StatusSucceeded},
		{Version: 1, App: "hello", Env: "production", Description: "Deploy 0f0f0f0",
			CreatedAt: now.Add(-10 * 24 * time.Hour), Status: ledger.StatusSucceeded},
	}
	var out bytes.Buffer
	if err := ledger.FormatTable(&out, releases, now); err != nil {
		t.Fatal(err)
	}
	want := `v4  Rollback to v2            bob@example.com    3m ago   pending
v3  Deploy 1a2b3c4            alice@example.com  2h ago   failed (release command exited with status 1)
v2  Set GREETING config vars  alice@example.com  2d ago   succeeded
v1  Deploy 0f0f0f0            unknown            10d ago  succeeded
`
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	out.Reset()
	if err := ledger.FormatTable(&out, nil, now); err != nil || out.String() != "No releases yet.\n" {
		t.Errorf("empty: %q, %v", out.String(), err)
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		ago  time.Duration
		want string
	}{
		{-time.Minute, "just now"}, {0, "just now"}, {12 * time.Second, "12s ago"}, {3*time.Minute + 59*time.Second, "3m ago"},
		{5 * time.Hour, "5h ago"}, {49 * time.Hour, "2d ago"},
	}
	for _, tt := range tests {
		if got := ledger.Age(now.Add(-tt.ago), now); got != tt.want {
			t.Errorf("Age(-%v) = %q, want %q", tt.ago, got, tt.want)
		}
	}
}
