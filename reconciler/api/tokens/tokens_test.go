package tokens

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func openStore(t *testing.T) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func TestCreateLookupRevoke(t *testing.T) {
	t.Parallel()
	s, path := openStore(t)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s.now = func() time.Time { return clock }
	secret, tok, err := s.Create(Token{Name: "ci", Scope: ScopeDeploy, Apps: []string{"hello"}}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, Prefix) || len(secret) < 50 {
		t.Fatalf("secret %q: want mf_ and 256 bits", secret)
	}
	if !tok.ExpiresAt.Equal(clock.Add(time.Hour)) {
		t.Errorf("expires %s", tok.ExpiresAt)
	}
	got, err := s.Lookup(secret)
	if err != nil || got.Name != "ci" || got.Scope != ScopeDeploy || !got.AllowsApp("hello") || got.AllowsApp("other") {
		t.Fatalf("Lookup: %+v, %v", got, err)
	}
	// Only the digest is on disk.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), strings.TrimPrefix(secret, Prefix)) {
		t.Error("the token file holds the secret")
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", info.Mode().Perm())
	}
	for _, bad := range []string{"", "mf_", secret + "x", strings.TrimPrefix(secret, Prefix), "Bearer " + secret} {
		if _, err := s.Lookup(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Lookup(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if _, _, err := s.Create(Token{Name: "ci", Scope: ScopeRead}, 0); !errors.Is(err, ErrExists) {
		t.Errorf("second ci: %v, want ErrExists", err)
	}
	clock = clock.Add(time.Hour)
	if _, err := s.Lookup(secret); !errors.Is(err, ErrInvalid) {
		t.Errorf("expired token: %v, want ErrInvalid", err)
	}
	list, err := s.List()
	if err != nil || len(list) != 1 || list[0].Name != "ci" {
		t.Fatalf("List: %+v, %v", list, err)
	}
	if err := s.Revoke("ci"); err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke("ci"); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: %v, want ErrNotFound", err)
	}
	if list, _ := s.List(); len(list) != 0 {
		t.Errorf("after revoke: %+v", list)
	}
}

func TestCreateRejects(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	tests := []struct {
		name string
		tok  Token
		ttl  time.Duration
	}{
		{"empty name", Token{Scope: ScopeRead}, 0},
		{"name with a space", Token{Name: "a b", Scope: ScopeRead}, 0},
		{"unknown scope", Token{Name: "x", Scope: "root"}, 0},
		{"negative ttl", Token{Name: "x", Scope: ScopeRead}, -time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.Create(tt.tok, tt.ttl); err == nil {
				t.Error("created")
			}
		})
	}
}

func TestScopeAllows(t *testing.T) {
	t.Parallel()
	want := map[Scope][]Scope{
		ScopeRead:   {ScopeRead},
		ScopeDeploy: {ScopeRead, ScopeDeploy},
		ScopeRun:    {ScopeRead, ScopeRun},
		ScopeAdmin:  {ScopeRead, ScopeDeploy, ScopeRun, ScopeAdmin},
	}
	for _, have := range Scopes {
		for _, need := range Scopes {
			allowed := false
			for _, s := range want[have] {
				allowed = allowed || s == need
			}
			if have.Allows(need) != allowed {
				t.Errorf("%s allows %s: %v, want %v", have, need, have.Allows(need), allowed)
			}
		}
	}
}

// TestReopen: tokens outlive the daemon (Open loads them), revoked ones stay revoked.
func TestReopen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	kept, _, err := s.Create(Token{Name: "kept", Scope: ScopeRun}, 0)
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := s.Create(Token{Name: "gone", Scope: ScopeAdmin}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Revoke("gone"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if tok, err := s.Lookup(kept); err != nil || tok.Name != "kept" || tok.Scope != ScopeRun {
		t.Errorf("kept after reopen: %+v, %v", tok, err)
	}
	if _, err := s.Lookup(gone); !errors.Is(err, ErrInvalid) {
		t.Errorf("revoked after reopen: %v", err)
	}
}

// BenchmarkLookup is the token check alone: what a bearer token adds to a request.
func BenchmarkLookup(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "tokens.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for i := range 100 {
		if _, _, err := s.Create(Token{Name: "t" + strconv.Itoa(i), Scope: ScopeRead}, 0); err != nil {
			b.Fatal(err)
		}
	}
	secret, _, err := s.Create(Token{Name: "bench", Scope: ScopeRead}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Lookup(secret); err != nil {
			b.Fatal(err)
		}
	}
}
