package process

import (
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// outputWatch tells each dyno's follower when its output file changed: one inotify
// watch on the state directory serves every dyno, so an idle dyno costs no wakeup and
// no read at all. Where inotify is unavailable (or its queue overflowed) every
// follower is woken, every logPollInterval in the first case, once in the second.
type outputWatch struct {
	dir     string
	watcher *fsnotify.Watcher // nil: poll
	log     *slog.Logger

	mu   sync.Mutex
	subs map[string]chan struct{} // by output file name (<id>.log)
}

func newOutputWatch(dir string, log *slog.Logger) *outputWatch {
	ow := &outputWatch{dir: dir, log: log, subs: make(map[string]chan struct{})}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(dir); err != nil {
			w.Close()
		}
	}
	if err != nil {
		log.Warn("dyno output: inotify unavailable, polling instead", "dir", dir, "every", logPollInterval, "err", err)
		return ow
	}
	ow.watcher = w
	return ow
}

// subscribe returns a channel that receives (coalesced, never blocking the watch)
// when the output file at path may have new bytes, and the cancel that unsubscribes.
// Subscribe before the first read: a change in between wakes that read's successor.
func (ow *outputWatch) subscribe(path string) (wake <-chan struct{}, cancel func()) {
	ch := make(chan struct{}, 1)
	name := filepath.Base(path)
	ow.mu.Lock()
	ow.subs[name] = ch
	ow.mu.Unlock()
	return ch, func() {
		ow.mu.Lock()
		if ow.subs[name] == ch {
			delete(ow.subs, name)
		}
		ow.mu.Unlock()
	}
}

// run delivers changes until ctx ends, then closes the inotify watch.
func (ow *outputWatch) run(ctx context.Context) {
	if ow.watcher == nil {
		ow.poll(ctx)
		return
	}
	defer ow.watcher.Close()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-ow.watcher.Events:
			if !ok {
				ow.poll(ctx) // not before Close; should it ever be, lose nothing
				return
			}
			// Write is a write or a hole punched; Create a restarted dyno's new file.
			if ev.Has(fsnotify.Write) || ev.Has(fsnotify.Create) {
				ow.wake(filepath.Base(ev.Name))
			}
		case err, ok := <-ow.watcher.Errors:
			if !ok {
				ow.poll(ctx)
				return
			}
			// The queue overflowed (or worse): some change may be unknown, read all.
			ow.log.Warn("dyno output: inotify", "dir", ow.dir, "err", err)
			ow.wakeAll()
		}
	}
}

// poll wakes every follower every logPollInterval until ctx ends: the fallback
// without inotify.
func (ow *outputWatch) poll(ctx context.Context) {
	ticker := time.NewTicker(logPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			ow.wakeAll()
		}
	}
}

func (ow *outputWatch) wake(name string) {
	if !strings.HasSuffix(name, ".log") {
		return // state files and their temporaries
	}
	ow.mu.Lock()
	ch := ow.subs[name]
	ow.mu.Unlock()
	if ch != nil {
		notify(ch)
	}
}

func (ow *outputWatch) wakeAll() {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	for _, ch := range ow.subs {
		notify(ch)
	}
}

// notify sends on a wake channel of capacity 1 without blocking: a wake already
// pending covers this one.
func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
