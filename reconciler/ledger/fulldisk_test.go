package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/internal/smalldisk"
	"github.com/manifold-paas/manifold/reconciler/ledger"
)

// TestFullDisk appends releases until the ledger's disk (a 2 MB tmpfs) is full: the
// append that does not fit fails with an error saying so, every release appended
// before it reads back unchanged (also after the ledger is closed and opened again on
// the full disk), and once there is room the next append gets the next version: none
// lost, none rewritten, no gap.
func TestFullDisk(t *testing.T) {
	disk, inChild := smalldisk.Mount(t, "2m")
	if !inChild {
		return
	}
	ctx := context.Background()
	path := filepath.Join(disk, "ledger.db")
	l, err := ledger.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	// A big config var, so that the disk fills within a bounded number of appends.
	config := map[string]string{"BLOB": strings.Repeat("x", 16<<10)}
	var appended []ledger.Release
	var full error
	for i := range 1000 {
		r, err := l.Append(ctx, deploy("hello", "production", fmt.Sprintf("%07dslug", i), config))
		if err != nil {
			full = err
			break
		}
		appended = append(appended, r)
	}
	if full == nil {
		t.Fatalf("1000 appends of 16 KB fit a 2 MB disk")
	}
	if !errors.Is(full, syscall.ENOSPC) && !strings.Contains(full.Error(), "no space left on device") {
		t.Errorf("the append that did not fit: %v; want the full disk named", full)
	}
	t.Logf("%d releases fit; then: %v", len(appended), full)
	if len(appended) < 10 {
		t.Fatalf("only %d releases fit before the disk was full", len(appended))
	}
	check := func(l *ledger.Ledger, when string) {
		t.Helper()
		got, err := l.List("hello", "production")
		if err != nil {
			t.Fatalf("%s: List: %v", when, err)
		}
		if len(got) != len(appended) {
			t.Fatalf("%s: %d releases, want the %d appended", when, len(got), len(appended))
		}
		for i := range got {
			// Whatever the order, each version reads as it was appended.
			want := appended[got[i].Version-1]
			if !got[i].CreatedAt.Equal(want.CreatedAt) {
				t.Errorf("%s: v%d created %v, want %v", when, got[i].Version, got[i].CreatedAt, want.CreatedAt)
			}
			got[i].CreatedAt = want.CreatedAt // the same instant; monotonic reading and location aside
			if !reflect.DeepEqual(got[i], want) {
				t.Errorf("%s: v%d reads %s, want %s", when, got[i].Version, got[i].SlugKey, want.SlugKey)
			}
		}
	}
	check(l, "on the full disk")
	if err := l.Close(); err != nil {
		t.Fatalf("close on the full disk: %v", err)
	}
	l, err = ledger.Open(path)
	if err != nil {
		t.Fatalf("open again on the full disk: %v", err)
	}
	defer l.Close()
	check(l, "opened again on the full disk")

	// Room again, as when an operator frees space: the tmpfs grows.
	if err := syscall.Mount("tmpfs", disk, "tmpfs", syscall.MS_REMOUNT, "size=8m"); err != nil {
		t.Fatalf("grow the tmpfs: %v", err)
	}
	r, err := l.Append(ctx, deploy("hello", "production", "nextslug", config))
	if err != nil {
		t.Fatalf("append with room again: %v", err)
	}
	if r.Version != len(appended)+1 {
		t.Errorf("the append after the full disk is v%d, want v%d", r.Version, len(appended)+1)
	}
	appended = append(appended, r)
	check(l, "after the disk had room again")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}
