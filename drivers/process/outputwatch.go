package process

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// outputWatch tells each dyno's follower when its output file changed, through one
// inotify instance read by the netpoller: an idle dyno costs no wakeup and no read.
//
// Each file has a one-shot watch (IN_MODIFY|IN_ONESHOT) that its follower re-arms
// before each read, so a busy dyno raises one event per read, not one per write: a
// dyno logging a thousand lines a second costs as few wakeups as one logging twenty
// (BenchmarkChattyDynos). (fsnotify, which the rest of manifold uses, has no one-shot
// watch: every write would wake two goroutines.) A watch on the directory tells the
// creation of a file that was missing when its follower armed.
//
// Without inotify (or when a watch cannot be added) followers are woken every
// logPollInterval instead; after an overflow of the event queue, all at once.
type outputWatch struct {
	dir string
	log *slog.Logger

	mu     sync.Mutex
	file   *os.File // the inotify instance; nil: none, followers are polled
	fd     int      // file's descriptor for inotify_add_watch; -1 once closed
	dirWd  int32
	byWd   map[int32]*outputSub
	byName map[string]*outputSub // by file name (<id>.log)
	polled map[*outputSub]bool   // followers without a watch: woken by pollLoop
	warned bool

	ctx    context.Context // the driver's: ends run and pollLoop
	poll   sync.Once       // starts pollLoop when a follower first needs it
	pollWg sync.WaitGroup  // run waits for pollLoop

}

// outputSub is one follower's subscription.
type outputSub struct {
	ow   *outputWatch
	path string
	name string
	wake chan struct{} // capacity 1: a pending wake covers the ones after it

	// guarded by ow.mu
	wd    int32
	armed bool // a one-shot watch is in place and has not fired
	gone  bool // cancelled
}

// newOutputWatch watches dir until ctx ends (run returns then).
func newOutputWatch(ctx context.Context, dir string, log *slog.Logger) *outputWatch {
	ow := &outputWatch{dir: dir, log: log, fd: -1, byWd: make(map[int32]*outputSub),
		byName: make(map[string]*outputSub), polled: make(map[*outputSub]bool), ctx: ctx}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		log.Warn("dyno output: inotify unavailable, polling instead", "every", logPollInterval, "err", err)
		return ow
	}
	dirWd, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		unix.Close(fd)
		log.Warn("dyno output: inotify watch on the state directory, polling instead", "dir", dir, "every", logPollInterval, "err", err)
		return ow
	}
	// Non-blocking: os.NewFile registers it with the netpoller, run parks no thread.
	ow.file, ow.fd, ow.dirWd = os.NewFile(uintptr(fd), "inotify:"+dir), fd, int32(dirWd)
	return ow
}

// subscribe registers the follower of the output file at path. The follower calls arm
// before each read of the file and reads again whenever wake receives.
func (ow *outputWatch) subscribe(path string) *outputSub {
	s := &outputSub{ow: ow, path: path, name: filepath.Base(path), wake: make(chan struct{}, 1)}
	ow.mu.Lock()
	defer ow.mu.Unlock()
	ow.byName[s.name] = s
	if ow.file == nil {
		ow.pollLocked(s)
	}
	return s
}

// arm makes sure the next change of the file wakes the follower. Call it before
// reading: a write after arm raises an event, one before it is in the read.
func (s *outputSub) arm() {
	ow := s.ow
	ow.mu.Lock()
	defer ow.mu.Unlock()
	if s.armed || s.gone || ow.fd < 0 || ow.polled[s] {
		return
	}
	wd, err := unix.InotifyAddWatch(ow.fd, s.path, unix.IN_MODIFY|unix.IN_ONESHOT)
	switch {
	case errors.Is(err, unix.ENOENT):
		return // not there yet: the directory watch tells its creation
	case err != nil:
		if !ow.warned {
			ow.warned = true
			ow.log.Warn("dyno output: inotify watch (max_user_watches?), polling the files without one", "file", s.path, "err", err)
		}
		ow.pollLocked(s)
		return
	}
	s.wd, s.armed = int32(wd), true
	ow.byWd[s.wd] = s
}

// cancel ends the subscription.
func (s *outputSub) cancel() {
	ow := s.ow
	ow.mu.Lock()
	defer ow.mu.Unlock()
	s.gone = true
	if s.armed && ow.fd >= 0 {
		_, _ = unix.InotifyRmWatch(ow.fd, uint32(s.wd))
	}
	if ow.byWd[s.wd] == s {
		delete(ow.byWd, s.wd)
	}
	if ow.byName[s.name] == s {
		delete(ow.byName, s.name)
	}
	delete(ow.polled, s)
}

// run reads events until the watch's context ends, then closes the inotify instance
// and waits for pollLoop.
func (ow *outputWatch) run() {
	defer ow.pollWg.Wait()
	ctx := ow.ctx
	file := ow.file
	if file == nil {
		<-ctx.Done()
		return
	}
	defer func() {
		ow.mu.Lock()
		ow.fd = -1 // no arm or cancel uses the descriptor after this
		ow.mu.Unlock()
		file.Close()
	}()
	// A deadline in the past wakes the parked read at once.
	stop := context.AfterFunc(ctx, func() { _ = file.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	buf := make([]byte, 64<<10)
	for {
		n, err := file.Read(buf)
		if err != nil {
			if ctx.Err() == nil {
				ow.log.Error("dyno output: read inotify events, polling instead", "err", err)
				ow.mu.Lock()
				for _, s := range ow.byName {
					ow.pollLocked(s)
				}
				ow.mu.Unlock()
			}
			return
		}
		ow.dispatch(buf[:n])
	}
}

// dispatch wakes the followers of a batch of inotify events.
func (ow *outputWatch) dispatch(events []byte) {
	ow.mu.Lock()
	defer ow.mu.Unlock()
	for len(events) >= unix.SizeofInotifyEvent {
		wd := int32(binary.NativeEndian.Uint32(events[0:4]))
		mask := binary.NativeEndian.Uint32(events[4:8])
		nameLen := int(binary.NativeEndian.Uint32(events[12:16]))
		end := min(unix.SizeofInotifyEvent+nameLen, len(events))
		name := events[unix.SizeofInotifyEvent:end]
		events = events[end:]
		switch {
		case mask&unix.IN_Q_OVERFLOW != 0:
			// Events were lost, one-shot watches that fired among them too: re-arm
			// and read every file.
			for _, s := range ow.byName {
				s.armed = false
				notify(s.wake)
			}
		case wd == ow.dirWd:
			if s := ow.byName[cString(name)]; s != nil {
				notify(s.wake) // a restarted dyno's new file: arm and read it
			}
		default:
			s := ow.byWd[wd]
			if s == nil {
				continue
			}
			if mask&unix.IN_IGNORED != 0 { // the one-shot fired, or the file is gone
				delete(ow.byWd, wd)
				if s.wd == wd {
					s.armed = false
				}
			}
			if mask&unix.IN_MODIFY != 0 {
				if s.wd == wd {
					s.armed = false
				}
				notify(s.wake)
			}
		}
	}
}

// cString is a NUL-padded inotify name.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// pollLocked has the follower woken every logPollInterval from now on; ow.mu is held.
func (ow *outputWatch) pollLocked(s *outputSub) {
	ow.polled[s] = true
	ow.poll.Do(func() { ow.pollWg.Go(ow.pollLoop) })
}

// pollLoop wakes the polled followers every logPollInterval until the watch's
// context ends. It starts only once a follower needs it.
func (ow *outputWatch) pollLoop() {
	ctx := ow.ctx
	ticker := time.NewTicker(logPollInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		ow.mu.Lock()
		for s := range ow.polled {
			notify(s.wake)
		}
		ow.mu.Unlock()
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
