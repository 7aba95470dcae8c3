package swarm

import "time"

// lineVerdict is what the cursor says of one line of a stream.
type lineVerdict int

const (
	lineNew       lineVerdict = iota // deliver it
	lineSeen                         // delivered before the stream broke, or read twice by the engine: skip it
	lineAfterLoss                    // deliver it after an L10 line: the engine no longer holds the lines before it
	lineGap                          // the stream skipped lines an engine may still hold: follow again
)

// logCursor is how far the driver delivered one service's log, task by task. It is
// pure (no I/O) and owned by one follower goroutine.
type logCursor struct {
	tasks  map[string]*taskCursor
	since  time.Time // the current stream's since
	newest time.Time // the newest line delivered
}

// taskCursor is how far one task's lines were delivered.
type taskCursor struct {
	seq     uint64    // number of the last numbered line delivered; 0: none
	at      time.Time // time of the last line delivered
	atCount int       // lines delivered with exactly that time (for lines without a number)
	// wanted: a gap showed that the stream began after this quiet task's last line;
	// the next stream begins at or before it.
	wanted bool

	// Of the current stream:
	delivered bool      // a line of the task was delivered
	replayAt  time.Time // the time of the unnumbered lines being counted again
	replayN   int       // how many lines at replayAt the stream has read
}

func newLogCursor(start time.Time) *logCursor {
	return &logCursor{tasks: map[string]*taskCursor{}, since: start}
}

// begin starts a stream and returns its since: the oldest last line among the tasks
// that wrote within logReplayWindow of the newest line (and the wanted ones), so
// that every line an engine holds after what was delivered comes again; Docker's
// since is inclusive, and accept skips what was delivered. Tasks silent for
// logForget are forgotten.
func (c *logCursor) begin() time.Time {
	if !c.newest.IsZero() {
		since := c.newest
		for id, t := range c.tasks {
			switch {
			case t.wanted || !t.at.Before(c.newest.Add(-logReplayWindow)):
				if t.at.Before(since) {
					since = t.at
				}
			case t.at.Before(c.newest.Add(-logForget)):
				delete(c.tasks, id)
			}
		}
		c.since = since
	}
	for _, t := range c.tasks {
		t.wanted, t.delivered, t.replayAt, t.replayN = false, false, time.Time{}, 0
	}
	return c.since
}

// accept says what to do with a line of task at time at, numbered seq (0: not
// numbered), and records it as delivered unless the verdict is lineSeen or lineGap.
// With lineAfterLoss, lost lines were numbered after the task's last delivered
// line, at lostSince.
func (c *logCursor) accept(task string, at time.Time, seq uint64) (v lineVerdict, lost uint64, lostSince time.Time) {
	t := c.tasks[task]
	if t == nil {
		t = &taskCursor{}
		c.tasks[task] = t
	}
	switch {
	case seq > 0 && t.seq > 0:
		if seq <= t.seq {
			return lineSeen, 0, time.Time{}
		}
		if seq > t.seq+1 {
			if t.delivered {
				return lineGap, 0, time.Time{} // lost in transit: the engine may hold them
			}
			if t.at.Before(c.since) {
				t.wanted = true // this stream began after them
				return lineGap, 0, time.Time{}
			}
			// The stream began at or before the task's last delivered line, and the
			// engine's next line for it comes after a gap: rotated away.
			v, lost, lostSince = lineAfterLoss, seq-t.seq-1, t.at
		}
	case seq == 0:
		// Unnumbered: only the time tells. Lines at the last delivered time are
		// delivered again as many as the stream reads beyond those delivered.
		if at.Before(t.at) {
			return lineSeen, 0, time.Time{}
		}
		if at.Equal(t.at) {
			if !t.replayAt.Equal(at) {
				t.replayAt, t.replayN = at, 0
			}
			t.replayN++
			if t.replayN <= t.atCount {
				return lineSeen, 0, time.Time{}
			}
		}
	}
	c.record(t, at, seq)
	return v, lost, lostSince
}

// record marks a line delivered.
func (c *logCursor) record(t *taskCursor, at time.Time, seq uint64) {
	if seq > 0 {
		t.seq = seq
	}
	switch {
	case at.After(t.at):
		t.at, t.atCount = at, 1
		t.replayAt, t.replayN = at, 1
	case at.Equal(t.at):
		t.atCount++
	}
	t.delivered = true
	if at.After(c.newest) {
		c.newest = at
	}
}
