package ledger_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/ledger"
	bolt "go.etcd.io/bbolt"
)

// TestReviewMark: a review environment's release keeps its mark (ref, commit,
// source) through SetStatus, a rollback and a reopen; the table shows it; a release
// stored before the mark existed reads as unmarked.
func TestReviewMark(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	mark := &ledger.Review{Ref: "refs/pull/7/head", Commit: "1a2b3c4d5e6f7a8b9c0d1a2b3c4d5e6f7a8b9c0d", Source: "config"}
	r := deploy("hello", "pr-7", "aaaaaaa1", nil)
	r.Review = mark
	value(l.Append(ctx, r))(t)
	must(t, l.SetStatus(ctx, "hello", "pr-7", 1, ledger.StatusSucceeded, ""))
	value(l.Append(ctx, deploy("hello", "pr-7", "bbbbbbb2", nil)))(t)
	must(t, l.SetStatus(ctx, "hello", "pr-7", 2, ledger.StatusSucceeded, ""))
	rollback, err := l.Rollback(ctx, "hello", "pr-7", 1, "bob@example.com", "sha256:spec")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rollback.Review, mark) {
		t.Errorf("the rollback to a review release has mark %+v, want %+v", rollback.Review, mark)
	}
	must(t, l.Close())

	l = open(t, path)
	releases, err := l.List("hello", "pr-7")
	if err != nil || len(releases) != 3 {
		t.Fatalf("List: %d releases, %v", len(releases), err)
	}
	for _, r := range releases {
		want := mark
		if r.Version == 2 {
			want = nil
		}
		if !reflect.DeepEqual(r.Review, want) {
			t.Errorf("v%d after a reopen: mark %+v, want %+v", r.Version, r.Review, want)
		}
	}
	var out bytes.Buffer
	now := releases[0].CreatedAt.Add(time.Minute)
	if err := ledger.FormatTable(&out, releases, now); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	for i, want := range []string{"review refs/pull/7/head@1a2b3c4", "", "review refs/pull/7/head@1a2b3c4"} {
		if got := strings.Contains(lines[i], "review "); got != (want != "") || !strings.Contains(lines[i], want) {
			t.Errorf("table line %q, want the mark %q", lines[i], want)
		}
	}
}

// TestReviewMarkOldLedger: a release written before the mark existed (its JSON has
// no "review") reads, unmarked, and the ledger appends after it.
func TestReviewMarkOldLedger(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	l := open(t, path)
	value(l.Append(context.Background(), deploy("hello", "production", "aaaaaaa1", nil)))(t)
	must(t, l.Close())

	// Rewrite v1 as the previous manifold stored it.
	old := `{"version":1,"app":"hello","env":"production","slug_key":"aaaaaaa1","config":null,` +
		`"secrets":{"TOKEN":{"sealed":"age:c2Vjb25k","at":"environments/production.hcl:5:15"}},` +
		`"process_types":{"web":"bin/hello"},"description":"Deploy aaaaaaa","created_at":"2026-01-02T03:04:05Z","status":"succeeded"}`
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	must(t, db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket([]byte("releases")).Bucket([]byte("hello\x00production")).Put(binary.BigEndian.AppendUint64(nil, 1), []byte(old))
	}))
	must(t, db.Close())

	l = open(t, path)
	got, err := l.Get("hello", "production", 1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Review != nil || got.Status != ledger.StatusSucceeded || got.Secrets["TOKEN"] != (ledger.Secret{Sealed: "age:c2Vjb25k", At: "environments/production.hcl:5:15"}) {
		t.Errorf("the old release reads as %+v", got)
	}
	if r := value(l.Append(context.Background(), deploy("hello", "production", "bbbbbbb2", nil)))(t); r.Version != 2 || r.Review != nil {
		t.Errorf("appended after it: %+v", r)
	}
}
