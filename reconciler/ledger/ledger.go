// Package ledger is the release ledger: per app and environment, an append-only list
// of numbered releases (v1, v2, …), each a slug plus a config snapshot and who and why,
// kept in a bbolt file in the state dir. Nothing in it is ever rewritten but a
// release's status, which moves once from pending to succeeded or failed.
package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Status is where a release stands.
type Status string

// A release is pending while its release phase runs, then succeeded (it went live)
// or failed (the previous release keeps serving).
const (
	StatusPending   Status = "pending"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
)

func (s Status) valid() bool {
	return s == StatusPending || s == StatusSucceeded || s == StatusFailed
}

// Release is one numbered release of an app in one environment.
type Release struct {
	// Version is v<Version>, assigned by Append: 1, 2, … without gaps.
	Version int    `json:"version"`
	App     string `json:"app"`
	Env     string `json:"env"`
	// SlugKey names the slug in the slug store ("sha256:<hex>").
	SlugKey string `json:"slug_key"`
	// Config is the config vars snapshot the release runs with.
	Config map[string]string `json:"config"`
	// Secrets are the release's secrets as sealed in the config repo (never their
	// plaintext): the daemon opens them each time it starts a dyno of the release.
	Secrets map[string]Secret `json:"secrets,omitempty"`
	// ProcessTypes maps each process type to its command.
	ProcessTypes map[string]string `json:"process_types"`
	// ReleaseCommand is the release phase's command, run once before the release goes
	// live; empty when there is none.
	ReleaseCommand string `json:"release_command,omitempty"`
	// SpecDigest identifies the app's spec (code, config, commands) the release was
	// made for. A rollback records the spec that was current when it was asked for,
	// so that the reconciler keeps the rollback until a commit changes the app.
	SpecDigest string `json:"spec_digest,omitempty"`
	// Description says why the release exists: "Deploy 1a2b3c4", "Set GREETING config
	// vars", "Rollback to v3".
	Description string `json:"description"`
	// Commit and Author are the config repo commit it came from and who made it.
	Commit string `json:"commit,omitempty"`
	Author string `json:"author,omitempty"`
	// CreatedAt is when it was appended (UTC).
	CreatedAt time.Time `json:"created_at"`
	Status    Status    `json:"status"`
	// StatusReason says why a release failed ("release command exited with status 1").
	StatusReason string `json:"status_reason,omitempty"`
	// RollbackOf is the version this release copies, 0 when it is not a rollback.
	RollbackOf int `json:"rollback_of,omitempty"`
	// Review marks a release of a review environment (pr-7): the ref and commit it
	// was built from. nil for every other release, and in ledgers older than it.
	Review *Review `json:"review,omitempty"`
}

// Review is the mark of a review environment's release, written with it and never
// changed: it stays after the environment is torn down.
type Review struct {
	// Ref is the git ref the environment comes from (refs/pull/7/head).
	Ref string `json:"ref"`
	// Commit is the ref's commit the release was built from.
	Commit string `json:"commit"`
	// Source is the repository whose ref it is: "config" (the config repo) or
	// "app" (the app's own git source).
	Source string `json:"source"`
}

// Secret is one sealed secret of a release.
type Secret struct {
	// Sealed is "age:…", as written in the config repo.
	Sealed string `json:"sealed"`
	// At is where it was written, file:line:col, for errors when it does not open.
	At string `json:"at,omitempty"`
	// Env is the environment it is sealed for, when not the release's own: a
	// review environment's are sealed for "review".
	Env string `json:"env,omitempty"`
}

// AppEnv names one app in one environment: one list of releases.
type AppEnv struct {
	App string `json:"app"`
	Env string `json:"env"`
}

// Errors a caller decides on with errors.Is.
var (
	// ErrNotFound: no such release (or no succeeded release, for Current).
	ErrNotFound = errors.New("release not found")
	// ErrStatusFinal: SetStatus on a release that already succeeded or failed.
	ErrStatusFinal = errors.New("release status is final")
	// ErrNotLive: Rollback to a release that never went live (pending or failed).
	ErrNotLive = errors.New("release never went live")
	// ErrLocked: another process (another daemon) holds the ledger file.
	ErrLocked = errors.New("locked by another process")
	// ErrCorrupt: the file at the ledger's path is not a valid manifold ledger.
	ErrCorrupt = errors.New("not a valid release ledger")
)

// Bucket layout. format holds formatVersion; releases holds one sub-bucket per
// app and environment ("app\x00env") whose keys are big-endian versions and values
// JSON releases; pins maps "app\x00env" to the big-endian version pinned by a rollback.
var (
	bucketFormat   = []byte("manifold")
	keyFormat      = []byte("format")
	bucketReleases = []byte("releases")
	bucketPins     = []byte("pins")
)

const formatVersion = "manifold-release-ledger/1"

// DefaultLockTimeout is how long Open waits for another process's lock on the file.
const DefaultLockTimeout = 2 * time.Second

// Options tune Open. The zero value is the default.
type Options struct {
	// LockTimeout bounds the wait for the file lock. 0: DefaultLockTimeout.
	LockTimeout time.Duration
}

// Ledger is an open release ledger. Its methods are safe for concurrent use.
type Ledger struct {
	db   *bolt.DB
	path string
}

// Open opens the ledger at path with the default Options (see OpenWithOptions).
func Open(path string) (*Ledger, error) { return OpenWithOptions(path, Options{}) }

// OpenWithOptions opens the ledger at path, creating it when missing. A file there that is not a
// manifold ledger (corrupt, or another program's database) is an error wrapping
// ErrCorrupt and naming the file, never a silent reset; a file another process holds
// is an error wrapping ErrLocked.
func OpenWithOptions(path string, opts Options) (l *Ledger, err error) {
	timeout := DefaultLockTimeout
	if opts.LockTimeout > 0 {
		timeout = opts.LockTimeout
	}
	// bbolt trusts the pages it reads; a damaged file must be an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			if l != nil {
				l.db.Close()
			}
			l, err = nil, fmt.Errorf("open release ledger %s: %w: %v", path, ErrCorrupt, r)
		}
	}()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open release ledger %s: %w (another manifold daemon on this state dir?)", path, ErrLocked)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrChecksum):
		return nil, fmt.Errorf("open release ledger %s: %w: %w", path, ErrCorrupt, err)
	case err != nil:
		if _, statErr := os.Stat(path); statErr == nil && !errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("open release ledger %s: %w: %w", path, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open release ledger %s: %w", path, err)
	}
	l = &Ledger{db: db, path: path}
	if err := l.init(); err != nil {
		db.Close()
		return nil, err
	}
	return l, nil
}

// init checks that the file is a manifold ledger (or empty) and creates the buckets.
func (l *Ledger) init() error {
	err := l.db.Update(func(tx *bolt.Tx) error {
		if meta := tx.Bucket(bucketFormat); meta != nil {
			if got := meta.Get(keyFormat); !bytes.Equal(got, []byte(formatVersion)) {
				return fmt.Errorf("%w: format %q, want %q", ErrCorrupt, got, formatVersion)
			}
		} else {
			var foreign []byte
			_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
				foreign = append([]byte(nil), name...)
				return errors.New("stop")
			})
			if foreign != nil {
				return fmt.Errorf("%w: a bbolt database of another program (it holds bucket %q)", ErrCorrupt, foreign)
			}
			meta, err := tx.CreateBucket(bucketFormat)
			if err != nil {
				return err
			}
			if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
				return err
			}
		}
		for _, name := range [][]byte{bucketReleases, bucketPins} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open release ledger %s: %w", l.path, err)
	}
	// A full consistency check: the ledger is small, and finding damage now beats
	// finding it mid-deploy.
	err = l.db.View(func(tx *bolt.Tx) error {
		for err := range tx.Check() {
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("open release ledger %s: %w: %w", l.path, ErrCorrupt, err)
	}
	return nil
}

// Path is the ledger's file.
func (l *Ledger) Path() string { return l.path }

// Close releases the file (and its lock).
func (l *Ledger) Close() error { return l.db.Close() }

func appEnvKey(app, env string) ([]byte, error) {
	if app == "" || env == "" {
		return nil, fmt.Errorf("release needs an app and an environment (got app %q, env %q)", app, env)
	}
	if strings.ContainsRune(app, 0) || strings.ContainsRune(env, 0) {
		return nil, fmt.Errorf("app %q or environment %q holds a NUL byte", app, env)
	}
	return []byte(app + "\x00" + env), nil
}

func versionKey(v int) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(v))
}

// decode reads a stored release; a value that does not decode is damage.
func (l *Ledger) decode(raw []byte, app, env string, key []byte) (Release, error) {
	var r Release
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("release ledger %s: %s (%s) v%d: %w: %w", l.path, app, env, binary.BigEndian.Uint64(key), ErrCorrupt, err)
	}
	return r, nil
}

// getTx reads release v<version> of app and env inside tx (ErrNotFound when absent).
func (l *Ledger) getTx(tx *bolt.Tx, aek []byte, app, env string, version int) (Release, error) {
	b := tx.Bucket(bucketReleases).Bucket(aek)
	if b == nil {
		return Release{}, ErrNotFound
	}
	raw := b.Get(versionKey(version))
	if raw == nil {
		return Release{}, ErrNotFound
	}
	return l.decode(raw, app, env, versionKey(version))
}

// Append adds r as the next version of its app and environment and returns it as
// stored: Version assigned (any Version r carries is ignored), CreatedAt set when
// zero, Status pending when empty. Concurrent appends never share or skip a version.
func (l *Ledger) Append(ctx context.Context, r Release) (Release, error) {
	if err := ctx.Err(); err != nil {
		return Release{}, err
	}
	aek, err := appEnvKey(r.App, r.Env)
	if err != nil {
		return Release{}, fmt.Errorf("append release: %w", err)
	}
	if r.Status == "" {
		r.Status = StatusPending
	}
	if !r.Status.valid() {
		return Release{}, fmt.Errorf("append release of %s (%s): invalid status %q", r.App, r.Env, r.Status)
	}
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	r.CreatedAt = r.CreatedAt.UTC()
	var stored Release
	// Batch coalesces concurrent appends into one transaction (one fsync); it may run
	// the function more than once, so it recomputes everything from the tx.
	err = l.db.Batch(func(tx *bolt.Tx) error {
		appended, err := appendTx(tx, aek, r)
		stored = appended
		return err
	})
	if err != nil {
		return Release{}, fmt.Errorf("append release of %s (%s) to %s: %w", r.App, r.Env, l.path, err)
	}
	return stored, nil
}

func appendTx(tx *bolt.Tx, aek []byte, r Release) (Release, error) {
	b, err := tx.Bucket(bucketReleases).CreateBucketIfNotExists(aek)
	if err != nil {
		return Release{}, err
	}
	r.Version = 1
	if last, _ := b.Cursor().Last(); last != nil {
		r.Version = int(binary.BigEndian.Uint64(last)) + 1
	}
	raw, err := json.Marshal(r)
	if err != nil {
		return Release{}, err
	}
	return r, b.Put(versionKey(r.Version), raw)
}

// SetStatus moves a pending release to succeeded or failed, with a reason. It is the
// only change a release ever sees: a second call is ErrStatusFinal.
func (l *Ledger) SetStatus(ctx context.Context, app, env string, version int, status Status, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if status != StatusSucceeded && status != StatusFailed {
		return fmt.Errorf("set status of %s (%s) v%d: %q is not succeeded or failed", app, env, version, status)
	}
	aek, err := appEnvKey(app, env)
	if err != nil {
		return fmt.Errorf("set status: %w", err)
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		r, err := l.getTx(tx, aek, app, env, version)
		if err != nil {
			return err
		}
		if r.Status != StatusPending {
			return fmt.Errorf("%w: it is %s", ErrStatusFinal, r.Status)
		}
		r.Status, r.StatusReason = status, reason
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Bucket(bucketReleases).Bucket(aek).Put(versionKey(version), raw)
	})
	if err != nil {
		return fmt.Errorf("set status of %s (%s) v%d: %w", app, env, version, err)
	}
	return nil
}

// Get returns release v<version> of an app in an environment, or ErrNotFound.
func (l *Ledger) Get(app, env string, version int) (Release, error) {
	aek, err := appEnvKey(app, env)
	if err != nil {
		return Release{}, err
	}
	var r Release
	err = l.db.View(func(tx *bolt.Tx) error {
		r, err = l.getTx(tx, aek, app, env, version)
		return err
	})
	if err != nil {
		return Release{}, fmt.Errorf("release v%d of %s (%s): %w", version, app, env, err)
	}
	return r, nil
}

// List returns every release of an app in an environment, newest first (empty when
// it has none).
func (l *Ledger) List(app, env string) ([]Release, error) {
	aek, err := appEnvKey(app, env)
	if err != nil {
		return nil, err
	}
	var releases []Release
	err = l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReleases).Bucket(aek)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			r, err := l.decode(v, app, env, k)
			if err != nil {
				return err
			}
			releases = append(releases, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list releases of %s (%s): %w", app, env, err)
	}
	return releases, nil
}

// Current returns the newest succeeded release (what should be running), or
// ErrNotFound when none has succeeded yet.
func (l *Ledger) Current(app, env string) (Release, error) {
	aek, err := appEnvKey(app, env)
	if err != nil {
		return Release{}, err
	}
	var current Release
	err = l.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketReleases).Bucket(aek)
		if b == nil {
			return ErrNotFound
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			r, err := l.decode(v, app, env, k)
			if err != nil {
				return err
			}
			if r.Status == StatusSucceeded {
				current = r
				return nil
			}
		}
		return ErrNotFound
	})
	if err != nil {
		return Release{}, fmt.Errorf("current release of %s (%s): %w", app, env, err)
	}
	return current, nil
}

// Apps lists every app and environment that has releases, sorted by app then env.
func (l *Ledger) Apps() ([]AppEnv, error) {
	var apps []AppEnv
	err := l.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReleases).ForEach(func(k, _ []byte) error {
			app, env, _ := strings.Cut(string(k), "\x00")
			apps = append(apps, AppEnv{App: app, Env: env})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list apps of %s: %w", l.path, err)
	}
	return apps, nil
}

// Rollback appends a copy of release v<to> (its slug, config, process types, release
// command and commit) as a new pending release "Rollback to v<to>" by author, made for
// the spec specDigest, and pins the app to it: Pinned reports it until Unpin. v<to>
// must have gone live (ErrNotLive).
func (l *Ledger) Rollback(ctx context.Context, app, env string, to int, author, specDigest string) (Release, error) {
	if err := ctx.Err(); err != nil {
		return Release{}, err
	}
	aek, err := appEnvKey(app, env)
	if err != nil {
		return Release{}, fmt.Errorf("rollback: %w", err)
	}
	var stored Release
	err = l.db.Update(func(tx *bolt.Tx) error {
		target, err := l.getTx(tx, aek, app, env, to)
		if err != nil {
			return err
		}
		if target.Status != StatusSucceeded {
			return fmt.Errorf("%w: v%d is %s", ErrNotLive, to, target.Status)
		}
		stored, err = appendTx(tx, aek, Release{
			App:            app,
			Env:            env,
			SlugKey:        target.SlugKey,
			Config:         target.Config,
			Secrets:        target.Secrets,
			ProcessTypes:   target.ProcessTypes,
			ReleaseCommand: target.ReleaseCommand,
			SpecDigest:     specDigest,
			Description:    fmt.Sprintf("Rollback to v%d", to),
			Commit:         target.Commit,
			Author:         author,
			CreatedAt:      time.Now().UTC(),
			Status:         StatusPending,
			RollbackOf:     to,
			Review:         target.Review, // it runs that ref's build again
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketPins).Put(aek, versionKey(stored.Version))
	})
	if err != nil {
		return Release{}, fmt.Errorf("rollback %s (%s) to v%d: %w", app, env, to, err)
	}
	return stored, nil
}

// Pinned reports whether a rollback pinned the app in env, and the version of the
// rollback release. The reconciler keeps a pinned app on that release, and calls
// Unpin when a new commit changes the app.
func (l *Ledger) Pinned(app, env string) (version int, ok bool) {
	aek, err := appEnvKey(app, env)
	if err != nil {
		return 0, false
	}
	_ = l.db.View(func(tx *bolt.Tx) error {
		if raw := tx.Bucket(bucketPins).Get(aek); len(raw) == 8 {
			version, ok = int(binary.BigEndian.Uint64(raw)), true
		}
		return nil
	})
	return version, ok
}

// Unpin clears a rollback's pin (a no-op when the app is not pinned).
func (l *Ledger) Unpin(ctx context.Context, app, env string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	aek, err := appEnvKey(app, env)
	if err != nil {
		return fmt.Errorf("unpin: %w", err)
	}
	err = l.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPins).Delete(aek)
	})
	if err != nil {
		return fmt.Errorf("unpin %s (%s): %w", app, env, err)
	}
	return nil
}
