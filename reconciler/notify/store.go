package notify

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/manifold-paas/manifold/spec"
)

// store.go keeps what must survive a kill -9: each receiver's queue (in order), the
// receivers themselves (so a restarted daemon delivers before its first pass), and
// the conditions that fired (so their resolution is sent after a restart).

var (
	bucketQueues     = []byte("queues")     // receiver id -> bucket: seq -> entry
	bucketReceivers  = []byte("receivers")  // receiver id -> receiver
	bucketConditions = []byte("conditions") // condition -> condition
	keyEnvs          = []byte("\x00envs")   // in receivers: the environments, for forge statuses
)

// entry is one queued delivery to one receiver.
type entry struct {
	seq uint64
	// Delivery is the X-Manifold-Delivery header: the event's id, with the
	// environment for a forge status of an event sent to several environments.
	Delivery string `json:"delivery"`
	Event    Event  `json:"event"`
	// State, Context and Description are a forge status (computed when queued, so
	// that statuses follow the order of events).
	State       string `json:"state,omitempty"`
	Context     string `json:"context,omitempty"`
	Description string `json:"description,omitempty"`
}

// receiver is one notify block with where it applies: every event (App empty) or
// one app's in one environment.
type receiver struct {
	ID     string      `json:"id"`
	App    string      `json:"app,omitempty"`
	Env    string      `json:"env,omitempty"`
	Notify spec.Notify `json:"notify"`
}

// condition is the state of one condition (see Notifier.admit).
type condition struct {
	Firing   bool      `json:"firing"`   // as last signalled
	Notified bool      `json:"notified"` // as receivers last heard
	FiredKey string    `json:"fired_key,omitempty"`
	FiredAt  time.Time `json:"fired_at"`
	// Last is the newest firing event: a held one is sent from it, and a
	// resolution copies its routing.
	Last       Event     `json:"last"`
	LastSignal time.Time `json:"last_signal"`
	Folded     int       `json:"folded,omitempty"`
}

type store struct{ db *bolt.DB }

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open notification queue %s: %w", path, err)
	}
	// A file made by an older umask or by hand: the queue holds receivers' URLs.
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("notification queue %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketQueues, bucketReceivers, bucketConditions} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("notification queue %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// commit appends entries to their receivers' queues and saves the conditions given,
// in one transaction: an event is queued for all its receivers or for none.
func (s *store) commit(entries map[string][]entry, conds map[string]*condition) error {
	if len(entries) == 0 && len(conds) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		queues := tx.Bucket(bucketQueues)
		for id, list := range entries {
			q, err := queues.CreateBucketIfNotExists([]byte(id))
			if err != nil {
				return err
			}
			for _, e := range list {
				seq, err := q.NextSequence()
				if err != nil {
					return err
				}
				body, err := json.Marshal(e)
				if err != nil {
					return err
				}
				if err := q.Put(seqKey(seq), body); err != nil {
					return err
				}
			}
		}
		cb := tx.Bucket(bucketConditions)
		for name, c := range conds {
			if c == nil {
				if err := cb.Delete([]byte(name)); err != nil {
					return err
				}
				continue
			}
			body, err := json.Marshal(c)
			if err != nil {
				return err
			}
			if err := cb.Put([]byte(name), body); err != nil {
				return err
			}
		}
		return nil
	})
}

// next returns the oldest entry of a receiver's queue after seq `after`.
func (s *store) next(id string, after uint64) (entry, bool, error) {
	var e entry
	found := false
	err := s.db.View(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(id))
		if q == nil {
			return nil
		}
		k, v := q.Cursor().Seek(seqKey(after + 1))
		if k == nil {
			return nil
		}
		found = true
		e.seq = binary.BigEndian.Uint64(k)
		return json.Unmarshal(v, &e)
	})
	return e, found, err
}

// removeThrough deletes the entries up to seq: delivered (or abandoned) ones.
func (s *store) removeThrough(id string, seq uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		q := tx.Bucket(bucketQueues).Bucket([]byte(id))
		if q == nil {
			return nil
		}
		c := q.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
}

// saveReceivers replaces the receivers and drops the queues of those gone; it
// returns how many entries it dropped per receiver.
func (s *store) saveReceivers(receivers map[string]receiver, envs []string) (map[string]int, error) {
	dropped := map[string]int{}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketReceivers); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
		rb, err := tx.CreateBucket(bucketReceivers)
		if err != nil {
			return err
		}
		for id, r := range receivers {
			body, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := rb.Put([]byte(id), body); err != nil {
				return err
			}
		}
		body, err := json.Marshal(envs)
		if err != nil {
			return err
		}
		if err := rb.Put(keyEnvs, body); err != nil {
			return err
		}
		queues := tx.Bucket(bucketQueues)
		var gone [][]byte
		err = queues.ForEachBucket(func(id []byte) error {
			if _, ok := receivers[string(id)]; !ok {
				gone = append(gone, id)
				dropped[string(id)] = queues.Bucket(id).Stats().KeyN
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, id := range gone {
			if err := queues.DeleteBucket(id); err != nil {
				return err
			}
		}
		return nil
	})
	return dropped, err
}

// load returns the saved receivers, environments and conditions.
func (s *store) load() (map[string]receiver, []string, map[string]*condition, error) {
	receivers := map[string]receiver{}
	conds := map[string]*condition{}
	var envs []string
	err := s.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketReceivers).ForEach(func(k, v []byte) error {
			if string(k) == string(keyEnvs) {
				return json.Unmarshal(v, &envs)
			}
			var r receiver
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			receivers[string(k)] = r
			return nil
		})
		if err != nil {
			return err
		}
		return tx.Bucket(bucketConditions).ForEach(func(k, v []byte) error {
			c := &condition{}
			if err := json.Unmarshal(v, c); err != nil {
				return err
			}
			conds[string(k)] = c
			return nil
		})
	})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("read notification queue: %w", err)
	}
	return receivers, envs, conds, nil
}
