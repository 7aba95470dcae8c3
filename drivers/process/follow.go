package process

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// follower turns a dyno's output file into log lines. The dyno writes the file with
// O_APPEND and never through the daemon, so the dyno outlives the daemon; the follower
// reads what is new, splits it on \n and publishes each line.
//
// Bounding the file: once more than maxFile bytes have been published since the last
// time, the follower punches a hole over the published prefix (fallocate
// FALLOC_FL_PUNCH_HOLE|KEEP_SIZE). The file keeps its apparent size and offsets never
// move, so appends racing with the punch are never lost, the follower's offset stays
// valid, and the disk holds only the unpublished bytes plus at most maxFile. (`ls -l`
// shows the apparent size; `du` shows what it takes.) Bytes written while no daemon runs
// stay until the next daemon has published them.
type follower struct {
	path    string
	maxLine int
	maxFile int64
	emit    func(text string)
	// warn reports a read or punch failure once, so a broken file does not flood the log.
	warn func(msg string, err error)

	mu       sync.Mutex
	file     *os.File
	readOff  int64 // bytes of the file read so far
	pending  []byte
	punched  int64 // the file's prefix already punched out
	noPunch  bool  // the file system cannot punch holes
	warned   bool
	closed   bool         // close ran: pump must not open the file again, nobody would close it
	consumed atomic.Int64 // every byte before it has been published: the saved offset
}

const readChunk = 32 << 10

func newFollower(path string, offset int64, maxLine int, maxFile int64, emit func(string), warn func(string, error)) *follower {
	fl := &follower{path: path, maxLine: maxLine, maxFile: maxFile, emit: emit, warn: warn, readOff: offset}
	fl.consumed.Store(offset)
	return fl
}

// offset is where a follower resumes after a restart: the start of the first byte not
// yet published (a partial line is read again).
func (fl *follower) offset() int64 { return fl.consumed.Load() }

// pump publishes every complete line written so far. With flush, a trailing partial
// line is published too: the writer has exited, nothing will complete it. It reports
// whether it read anything.
func (fl *follower) pump(flush bool) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return false
	}
	if fl.file == nil {
		f, err := os.OpenFile(fl.path, os.O_RDWR, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return false
		}
		if err != nil {
			fl.warnOnce("open dyno output", err)
			return false
		}
		fl.file = f
	}
	var chunk [readChunk]byte
	readAny := false
	for {
		n, err := fl.file.ReadAt(chunk[:], fl.readOff)
		if n > 0 {
			readAny = true
			fl.readOff += int64(n)
			fl.consume(chunk[:n])
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				fl.warnOnce("read dyno output", err)
			}
			break
		}
	}
	if flush && len(fl.pending) > 0 {
		fl.publish(len(fl.pending), len(fl.pending))
	}
	fl.punch()
	return readAny
}

// consume splits data on \n, publishing each complete line and every maxLine bytes of
// a longer one.
func (fl *follower) consume(data []byte) {
	for len(data) > 0 {
		room := fl.maxLine - len(fl.pending)
		nl := -1
		for i := 0; i < len(data) && i <= room; i++ { // a \n right after maxLine bytes ends that line
			if data[i] == '\n' {
				nl = i
				break
			}
		}
		switch {
		case nl >= 0:
			fl.pending = append(fl.pending, data[:nl]...)
			fl.publish(len(fl.pending), len(fl.pending)+1)
			data = data[nl+1:]
		case len(data) > room: // exactly room bytes wait: a \n may follow in the next read
			fl.pending = append(fl.pending, data[:room]...)
			fl.publish(len(fl.pending), len(fl.pending))
			data = data[room:]
		default:
			fl.pending = append(fl.pending, data...)
			data = nil
		}
	}
}

// publish emits the first n pending bytes as a line (without a trailing \r) and marks
// consumed bytes of the file as done.
func (fl *follower) publish(n, consumed int) {
	text := fl.pending[:n]
	if len(text) > 0 && text[len(text)-1] == '\r' {
		text = text[:len(text)-1]
	}
	fl.emit(string(text))
	fl.pending = fl.pending[:0]
	fl.consumed.Add(int64(consumed))
}

// punch frees the disk blocks of the published prefix once it exceeds maxFile.
func (fl *follower) punch() {
	if fl.noPunch || fl.maxFile <= 0 {
		return
	}
	end := fl.consumed.Load() &^ 4095 // whole blocks only
	if end-fl.punched < fl.maxFile {
		return
	}
	err := unix.Fallocate(int(fl.file.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, fl.punched, end-fl.punched)
	if err != nil {
		fl.noPunch = true
		fl.warnOnce("punch published dyno output (the file will grow)", err)
		return
	}
	fl.punched = end
}

func (fl *follower) warnOnce(msg string, err error) {
	if !fl.warned {
		fl.warned = true
		fl.warn(msg, err)
	}
}

// close releases the file for good: a dyno's follow goroutine may still tick once
// after down closed it, and a file it reopened then would never be closed.
func (fl *follower) close() {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	fl.closed = true
	if fl.file != nil {
		fl.file.Close()
		fl.file = nil
	}
}

// follow publishes the dyno's output as it is written and saves the offset now and
// then. It reads when the file changed (outputWatch): an idle dyno costs nothing, a
// line after a quiet spell goes at once, and a busy dyno's lines go in batches, one
// read per logPollInterval at most. A moved offset is saved within statePersistInterval.
func (dy *dyno) follow(ctx context.Context) {
	sub := dy.d.output.subscribe(dy.logPath)
	defer sub.cancel()
	saveTimer := time.NewTimer(statePersistInterval)
	saveTimer.Stop() // armed only while an offset waits to be saved
	defer saveTimer.Stop()
	batchTimer := time.NewTimer(logPollInterval)
	batchTimer.Stop()
	defer batchTimer.Stop()
	saveArmed := false
	saved, savedAt := dy.fl.offset(), time.Now()
	var lastRead time.Time
	for {
		sub.arm() // before the read: a write after it wakes us, one before it is read
		if dy.fl.pump(false) {
			lastRead = time.Now()
		}
		if off := dy.fl.offset(); off != saved {
			if due := statePersistInterval - time.Since(savedAt); due > 0 {
				if !saveArmed {
					saveTimer.Reset(due)
					saveArmed = true
				}
			} else {
				if err := dy.persist(); err != nil {
					dy.d.log.Error("save dyno state", "dyno", dy.id, "err", err)
				}
				saved, savedAt = off, time.Now()
			}
		}
		select {
		case <-ctx.Done():
			dy.fl.pump(false)
			return
		case <-dy.done:
			return
		case <-sub.wake:
		case <-saveTimer.C:
			saveArmed = false
			continue
		}
		// Woken soon after a read that found lines: wait out the batch interval.
		if wait := logPollInterval - time.Since(lastRead); wait > 0 {
			batchTimer.Reset(wait)
			select {
			case <-ctx.Done():
				dy.fl.pump(false)
				return
			case <-dy.done:
				return
			case <-batchTimer.C:
			}
		}
	}
}
