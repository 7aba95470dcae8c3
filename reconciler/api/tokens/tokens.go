// Package tokens keeps the API's bearer tokens: it makes them, stores only their
// SHA-256 digest (with name, scope, apps and expiry) in a bbolt file of the state dir,
// and resolves a presented token to what it may do.
package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Scope is what a token may do. Every scope may read; admin may do everything.
type Scope string

// The scopes, by the routes they open (docs/api.md lists them per route).
const (
	// ScopeRead: status, plan, ps, releases, logs.
	ScopeRead Scope = "read"
	// ScopeDeploy: read, plus reconcile and rollback.
	ScopeDeploy Scope = "deploy"
	// ScopeRun: read, plus one-off dynos.
	ScopeRun Scope = "run"
	// ScopeAdmin: everything, including tokens.
	ScopeAdmin Scope = "admin"
)

// Scopes lists every scope, weakest first.
var Scopes = []Scope{ScopeRead, ScopeDeploy, ScopeRun, ScopeAdmin}

// ParseScope checks s against Scopes.
func ParseScope(s string) (Scope, error) {
	if slices.Contains(Scopes, Scope(s)) {
		return Scope(s), nil
	}
	return "", fmt.Errorf("scope: want read, deploy, run or admin, got %q", s)
}

// Allows reports whether a token of scope s may call a route that needs scope need.
func (s Scope) Allows(need Scope) bool {
	return s == ScopeAdmin || need == ScopeRead || s == need
}

// Token is a token's record: everything but the secret, which is never kept.
type Token struct {
	Name  string `json:"name"`
	Scope Scope  `json:"scope"`
	// Apps limits the token to these apps; empty means every app.
	Apps      []string  `json:"apps,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the token stops working; zero means never.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// CreatedBy names who made it (a token's name or a local user).
	CreatedBy string `json:"created_by,omitempty"`
}

// AllowsApp reports whether the token may act on app.
func (t Token) AllowsApp(app string) bool {
	return len(t.Apps) == 0 || slices.Contains(t.Apps, app)
}

// Prefix starts every token, so that a leaked one is recognisable (secret scanners).
const Prefix = "mf_"

// secretBytes is a token's entropy: 256 bits, so that a plain SHA-256 is a safe
// digest to keep (no salt or slow hash is needed for a random secret).
const secretBytes = 32

var (
	// ErrInvalid: the token is unknown, malformed, revoked or expired.
	ErrInvalid = errors.New("invalid or expired token")
	// ErrExists: Create with a name already in use.
	ErrExists = errors.New("a token of that name exists")
	// ErrNotFound: Revoke of an unknown name.
	ErrNotFound = errors.New("no token of that name")
)

var (
	bucketByDigest = []byte("tokens") // digest (hex) -> JSON Token
	bucketByName   = []byte("names")  // name -> digest (hex)
)

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,62}$`)

// Store is an open token file. Its methods are safe for concurrent use.
//
// Lookups are answered from memory: bbolt locks the file for this process alone, so
// the copy, loaded at Open and changed with the file, cannot go stale; a request then
// costs a SHA-256 and a map lookup, not a transaction.
type Store struct {
	db  *bolt.DB
	now func() time.Time

	mu       sync.RWMutex
	byDigest map[[sha256.Size]byte]Token
}

// Open opens (or makes, mode 0600) the token file at path.
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("open tokens %s: locked by another process (another daemon?)", path)
		}
		return nil, fmt.Errorf("open tokens %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketByDigest, bucketByName} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open tokens %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now, byDigest: map[[sha256.Size]byte]Token{}}
	err = db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketByDigest).ForEach(func(key, record []byte) error {
			var t Token
			if err := json.Unmarshal(record, &t); err != nil {
				return fmt.Errorf("token %s: %w", key, err)
			}
			var sum [sha256.Size]byte
			if n, err := hex.Decode(sum[:], key); err != nil || n != len(sum) {
				return fmt.Errorf("token %s: bad digest", t.Name)
			}
			s.byDigest[sum] = t
			return nil
		})
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open tokens %s: %w", path, err)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Create makes a token for t (its CreatedAt is set here; a ttl > 0 sets ExpiresAt)
// and returns the secret, which exists only in this answer.
func (s *Store) Create(t Token, ttl time.Duration) (string, Token, error) {
	if !validName.MatchString(t.Name) {
		return "", Token{}, fmt.Errorf("token name %q: want letters, digits, . _ @ - (at most 63)", t.Name)
	}
	if _, err := ParseScope(string(t.Scope)); err != nil {
		return "", Token{}, err
	}
	if ttl < 0 {
		return "", Token{}, fmt.Errorf("ttl %s: want a positive duration", ttl)
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", Token{}, fmt.Errorf("make token: %w", err)
	}
	secret := Prefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	t.CreatedAt = s.now().UTC().Truncate(time.Second)
	if ttl > 0 {
		t.ExpiresAt = t.CreatedAt.Add(ttl)
	}
	record, err := json.Marshal(t)
	if err != nil {
		return "", Token{}, err
	}
	key := digest(secret)
	s.mu.Lock()
	defer s.mu.Unlock()
	err = s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketByName)
		if names.Get([]byte(t.Name)) != nil {
			return fmt.Errorf("%w: %s", ErrExists, t.Name)
		}
		if err := tx.Bucket(bucketByDigest).Put(key, record); err != nil {
			return err
		}
		return names.Put([]byte(t.Name), key)
	})
	if err != nil {
		return "", Token{}, fmt.Errorf("create token %s: %w", t.Name, err)
	}
	s.byDigest[sha256.Sum256([]byte(secret))] = t
	return secret, t, nil
}

// Lookup returns the token whose secret is secret, or ErrInvalid. Only the digest is
// looked up, so the time it takes says nothing about the secret.
func (s *Store) Lookup(secret string) (Token, error) {
	if !strings.HasPrefix(secret, Prefix) || len(secret) > 128 {
		return Token{}, ErrInvalid
	}
	s.mu.RLock()
	t, ok := s.byDigest[sha256.Sum256([]byte(secret))]
	s.mu.RUnlock()
	if !ok {
		return Token{}, ErrInvalid
	}
	if !t.ExpiresAt.IsZero() && !s.now().Before(t.ExpiresAt) {
		return Token{}, ErrInvalid
	}
	return t, nil
}

// List returns every token, by name (expired ones too: ExpiresAt says so).
func (s *Store) List() ([]Token, error) {
	var list []Token
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketByDigest).ForEach(func(_, record []byte) error {
			var t Token
			if err := json.Unmarshal(record, &t); err != nil {
				return err
			}
			list = append(list, t)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	slices.SortFunc(list, func(a, b Token) int { return strings.Compare(a.Name, b.Name) })
	return list, nil
}

// Revoke deletes the token named name: it stops working at once.
func (s *Store) Revoke(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.Update(func(tx *bolt.Tx) error {
		names := tx.Bucket(bucketByName)
		key := names.Get([]byte(name))
		if key == nil {
			return fmt.Errorf("%w: %s", ErrNotFound, name)
		}
		if err := tx.Bucket(bucketByDigest).Delete(key); err != nil {
			return err
		}
		var sum [sha256.Size]byte
		if _, err := hex.Decode(sum[:], key); err != nil {
			return fmt.Errorf("token %s: bad digest: %w", name, err)
		}
		delete(s.byDigest, sum) // the transaction may still fail: then the token is gone early, never late
		return names.Delete([]byte(name))
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", name, err)
	}
	return nil
}

func digest(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return []byte(hex.EncodeToString(sum[:]))
}
