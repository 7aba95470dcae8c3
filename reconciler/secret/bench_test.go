package secret_test

import (
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/secret"
)

// BenchmarkOpen is what opening one secret adds to each dyno start (the daemon opens
// a release's secrets anew for every dyno, release phase and one-off).
func BenchmarkOpen(b *testing.B) {
	file, recipient, err := secret.Generate()
	if err != nil {
		b.Fatal(err)
	}
	keyring, err := secret.ParseKeyring(strings.NewReader(file))
	if err != nil {
		b.Fatal(err)
	}
	where := secret.Binding{App: "hello", Env: "production", Name: "DATABASE_URL"}
	sealed, err := secret.Seal(where, "postgres://user:password@db.internal:5432/hello", []string{recipient})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := keyring.Open(where, sealed); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSeal is `manifold secret encrypt` and, per secret, `rekey`.
func BenchmarkSeal(b *testing.B) {
	_, recipient, err := secret.Generate()
	if err != nil {
		b.Fatal(err)
	}
	where := secret.Binding{App: "hello", Env: "production", Name: "DATABASE_URL"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := secret.Seal(where, "postgres://user:password@db.internal:5432/hello", []string{recipient}); err != nil {
			b.Fatal(err)
		}
	}
}
