package source_test

import (
	"fmt"
	"io/fs"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/source"
)

// newBenchRepo makes a config repo of 50 app specs in 5 directories.
func newBenchRepo(b *testing.B) *gitRepo {
	b.Helper()
	repo := newGitRepo(b)
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("examples/apps/group%d/app%d.hcl", i%5, i)] = fmt.Sprintf("app \"app%d\" {\n  process \"web\" { count = %d }\n}\n", i, i%4)
	}
	repo.commit("bench", files)
	return repo
}

// BenchmarkGitFetchUnchanged is the cost of one poll when nothing was pushed: a
// ref listing, no clone.
func BenchmarkGitFetchUnchanged(b *testing.B) {
	repo := newBenchRepo(b)
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Dir: b.TempDir(), Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if _, err := src.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := src.Fetch(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGitFetchNewCommit is commit -> snapshot on disk, the source's share of
// the commit-to-dyno latency (the git commit itself is outside the timer).
func BenchmarkGitFetchNewCommit(b *testing.B) {
	repo := newBenchRepo(b)
	src, err := source.NewGit(source.GitOptions{URL: repo.url(), Ref: "main", Dir: b.TempDir(), Interval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	if _, err := src.Fetch(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		b.StopTimer()
		i++
		sha := repo.commit(fmt.Sprintf("change %d", i), map[string]string{"examples/apps/group0/app0.hcl": fmt.Sprint(i)})
		b.StartTimer()
		snap, err := src.Fetch(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if snap.Rev.ID != sha {
			b.Fatalf("fetched %s, want %s", snap.Rev.ID, sha)
		}
	}
}

// BenchmarkTreeAtReadAll opens a commit and reads every file, as `manifold plan`
// does for each of --base and --head.
func BenchmarkTreeAtReadAll(b *testing.B) {
	repo := newBenchRepo(b)
	b.ReportAllocs()
	for b.Loop() {
		tree, _, err := source.TreeAt(repo.dir, "main")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		err = fs.WalkDir(tree, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			_, err = fs.ReadFile(tree, p)
			n++
			return err
		})
		if err != nil || n != 50 {
			b.Fatalf("read %d files: %v", n, err)
		}
	}
}

// BenchmarkHashDir hashes a 50-file folder, the cost of each folder-source check.
func BenchmarkHashDir(b *testing.B) {
	repo := newBenchRepo(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := source.HashDir(repo.dir); err != nil {
			b.Fatal(err)
		}
	}
}
