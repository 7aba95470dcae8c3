package swarm

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/logs"
)

// Following a service's logs, exactly once across breaks of the stream: the boot
// script numbers every line of a dyno's output (stampOutput), the driver skips the
// numbers it delivered already, follows again from the engines' own logs when the
// stream broke or skipped a number, and reports as L10 the numbers no engine keeps
// any more (json-file rotated them away while the manager was out of reach).
const (
	// logPingInterval and logPingTimeout: while a stream is open the manager is
	// pinged; a manager that does not answer within the timeout (stopped, hung,
	// gone) may have lost the nodes' log streams without ending ours, so the stream
	// is followed again from the last lines once it answers.
	logPingInterval = 2 * time.Second
	logPingTimeout  = 3 * time.Second
	// logReplayWindow: a stream followed again starts at the oldest last line among
	// the tasks that wrote within this window of the newest line; a quieter task is
	// read from further back only when its numbers show a gap (cursor.wanted).
	logReplayWindow = time.Minute
	// logSilence is how long a task that sent heartbeats may stay silent before
	// the driver asks whether it still runs (three heartbeats); each stall of the
	// same task doubles its allowance up to logMaxSilence, so that a task whose
	// heartbeat died (the app killed it) costs a new stream only now and then.
	logSilence    = 3 * logHeartbeat
	logMaxSilence = 5 * time.Minute
	// logForget is how long a task that wrote nothing stays in the cursor.
	logForget = time.Hour
	// l10Time is the "since" of Heroku's L10 line (seconds), as the logs package
	// writes it for drains.
	l10Time = "2006-01-02T15:04:05-07:00"
)

// stampPrefix starts every numbered line ("mf#42 text"); heartbeat is the line a
// task writes to its stderr every logHeartbeat (the 5 of stampOutput's sleep).
const (
	stampPrefix  = "mf#"
	heartbeat    = stampPrefix + "alive"
	logHeartbeat = 5 * time.Second
)

// stampOutput is the first part of the boot script of a long-running service
// (MANIFOLD_LOG_STAMP set; one-offs keep stdout and stderr apart). Everything the
// script and the app write goes through a fifo to an awk that writes it to the
// task's stdout with the line's number in front, so that the driver can tell a
// line delivered twice and count lines lost; the app's stderr joins its stdout, as
// Heroku's log has one stream per dyno. The task's stderr carries only a heartbeat
// every logHeartbeat, so that the driver can tell a quiet dyno from a stream that
// stalled. A stack without awk or mkfifo runs the app unnumbered (the driver then
// deduplicates by time only). On exit awk gets up to 2 s to write what is still in the fifo (a process
// the app left behind may hold it open: the script does not wait for that).
const stampOutput = `if [ -n "$MANIFOLD_LOG_STAMP" ] && command -v awk >/dev/null && mkfifo /tmp/.manifold-log 2>/dev/null; then
  (while sleep 5; do echo "` + heartbeat + `" >&2; done) &
  exec 9>&1
  awk '{ print "` + stampPrefix + `" NR " " $0; fflush() }' </tmp/.manifold-log &
  stamper=$!
  exec >/tmp/.manifold-log 2>&1
  rm -f /tmp/.manifold-log
  trap 'exec >&9 2>&9; i=0; while kill -0 $stamper 2>/dev/null && [ $i -lt 20 ]; do sleep 0.1; i=$((i+1)); done' EXIT
fi
unset MANIFOLD_LOG_STAMP
`

// errLogGap ends a stream that skipped numbers an engine may still hold;
// errLogStalled one that stopped bringing a running task's heartbeat.
var (
	errLogGap     = errors.New("log stream skipped lines")
	errLogStalled = errors.New("log stream stalled")
)

// followLogs follows a service's logs (every task on every node, through the
// manager) once; the follower lives until Close.
func (d *Driver) followLogs(service string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.follow[service] != nil {
		return
	}
	ctx, cancel := context.WithCancel(d.ctx)
	d.follow[service] = cancel
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.followService(ctx, service)
	}()
}

// followService publishes the service's lines as its dynos' (source app), named by
// the dyno each task is as of the last listing, from now on. When the stream
// breaks, skips a number, stalls or the manager stops answering, it follows again
// from the cursor: what the engines still hold is delivered once, what they lost is
// reported (L10).
func (d *Driver) followService(ctx context.Context, service string) {
	cur := newLogCursor(time.Now().UTC())
	alive := newLiveness()
	for ctx.Err() == nil {
		err := d.watchedStream(ctx, service, cur, alive)
		if ctx.Err() != nil {
			return
		}
		d.log.Debug("follow service logs again", "service", service, "err", err)
		if errors.Is(err, errLogGap) || errors.Is(err, errLogStalled) {
			continue // the lines are in the engines' logs: read them at once
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(logRetry):
		}
	}
}

// watchedStream runs one stream and, beside it, a watchdog that ends it when the
// manager does not answer a ping or a running task fell silent (its heartbeat
// stopped coming: the manager lost that node's log stream without ending ours).
func (d *Driver) watchedStream(ctx context.Context, service string, cur *logCursor, alive *liveness) error {
	streamCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	alive.begin(time.Now())
	watched := make(chan error, 1)
	go func() {
		tick := time.NewTicker(logPingInterval)
		defer tick.Stop()
		lastList := time.Time{}
		for {
			select {
			case <-streamCtx.Done():
				watched <- nil
				return
			case <-tick.C:
			}
			list := time.Since(lastList) >= logHeartbeat
			if list {
				lastList = time.Now()
			}
			if err := d.checkStream(streamCtx, service, alive, list); err != nil && streamCtx.Err() == nil {
				d.log.Info("service log stream stalled: following it again", "service", service, "err", err)
				watched <- err
				cancel()
				return
			}
		}
	}()
	err := d.streamLogs(streamCtx, service, cur, alive)
	cancel()
	if stalled := <-watched; stalled != nil {
		return stalled
	}
	return err
}

// checkStream pings the manager and asks it about the tasks silent for longer than
// their allowance; an error says the stream must be followed again. Every
// logHeartbeat it also lists the service's running tasks, so that a task that
// began while the stream was stalled is expected too.
func (d *Driver) checkStream(ctx context.Context, service string, alive *liveness, list bool) error {
	pingCtx, cancel := context.WithTimeout(ctx, logPingTimeout)
	_, err := d.cli.Ping(pingCtx)
	cancel()
	if err != nil {
		return fmt.Errorf("manager not answering: %w: %w", err, errLogStalled)
	}
	if list {
		listCtx, cancel := context.WithTimeout(ctx, logPingTimeout)
		tasks, err := d.cli.TaskList(listCtx, swarm.TaskListOptions{Filters: filters.NewArgs(
			filters.Arg("service", service), filters.Arg("desired-state", string(swarm.TaskStateRunning)))})
		cancel()
		if err != nil {
			return fmt.Errorf("list tasks: %w: %w", err, errLogStalled)
		}
		for _, t := range tasks {
			if t.Status.State == swarm.TaskStateRunning && stamped(t) {
				alive.expect(t.ID, time.Now())
			}
		}
	}
	for _, task := range alive.silent(time.Now()) {
		inspectCtx, cancel := context.WithTimeout(ctx, logPingTimeout)
		t, _, err := d.cli.TaskInspectWithRaw(inspectCtx, task)
		cancel()
		switch {
		case cerrdefs.IsNotFound(err):
			alive.forget(task)
		case err != nil:
			return fmt.Errorf("inspect task %s: %w: %w", task, err, errLogStalled)
		case t.Status.State == swarm.TaskStateRunning && t.DesiredState == swarm.TaskStateRunning:
			alive.stalled(task)
			return fmt.Errorf("task %s silent: %w", task, errLogStalled)
		default:
			// It ended while silent: its last lines may not have come; read them
			// once more, then expect nothing of it.
			alive.forget(task)
			return fmt.Errorf("task %s ended silent: %w", task, errLogStalled)
		}
	}
	return nil
}

// stamped says whether a task numbers its lines and sends heartbeats.
func stamped(t swarm.Task) bool {
	cs := t.Spec.ContainerSpec
	return cs != nil && slices.Contains(cs.Env, "MANIFOLD_LOG_STAMP=1")
}

// streamLogs follows one stream from the cursor and publishes each line not
// delivered before, after an L10 line when the engine lost some.
func (d *Driver) streamLogs(ctx context.Context, service string, cur *logCursor, alive *liveness) error {
	since := cur.begin()
	rc, err := d.cli.ServiceLogs(ctx, service, container.LogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: true, Timestamps: true, Details: true,
		Since: since.Format(time.RFC3339Nano),
	})
	if err != nil {
		return err
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	scanner := bufio.NewScanner(pr)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		at, taskID, text, ok := parseLogLine(scanner.Text())
		if !ok {
			continue
		}
		alive.heard(taskID, text == heartbeat, time.Now())
		if text == heartbeat {
			continue
		}
		seq, text := unstamp(text)
		_, seen := cur.tasks[taskID]
		verdict, lost, lostSince := cur.accept(taskID, at, seq)
		switch verdict {
		case lineSeen:
			continue
		case lineGap:
			return fmt.Errorf("task %s after line %d: %w", taskID, cur.tasks[taskID].seq, errLogGap)
		}
		spec, name, ok := d.taskDynoName(ctx, taskID)
		if !ok {
			continue
		}
		if seq == 1 && !seen {
			d.learnNonce(taskID, text) // the boot script's first line (memory.go)
		}
		if verdict == lineAfterLoss {
			d.log.Warn("dyno log lines lost", "app", spec.App, "env", spec.Env, "dyno", name, "lost", lost)
			d.opts.Logs.Publish(logs.Line{
				Time: time.Now().UTC().Truncate(time.Microsecond), App: spec.App, Env: spec.Env, Source: logs.SourceHeroku, Dyno: name,
				Text: l10Text(lost, lostSince),
			})
		}
		d.opts.Logs.Publish(logs.Line{Time: at.UTC().Truncate(time.Microsecond), App: spec.App, Env: spec.Env, Source: logs.SourceApp, Dyno: name, Text: text})
	}
	return scanner.Err()
}

// l10Text is Heroku's L10 line for lines of a dyno lost before manifold got them.
func l10Text(lost uint64, since time.Time) string {
	return fmt.Sprintf("Error L10 (output buffer overflow): %d messages dropped since %s.", lost, since.UTC().Format(l10Time))
}

// parseLogLine splits "2026-12-01T15:00:00.123Z com.docker.swarm.node.id=…,…,com.docker.swarm.task.id=… text".
func parseLogLine(line string) (at time.Time, taskID, text string, ok bool) {
	ts, rest, found := strings.Cut(line, " ")
	if !found {
		return at, "", "", false
	}
	at, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		return at, "", "", false
	}
	details, text, _ := strings.Cut(rest, " ")
	for _, kv := range strings.Split(details, ",") {
		if v, found := strings.CutPrefix(kv, "com.docker.swarm.task.id="); found {
			taskID = v
		}
	}
	return at, taskID, text, taskID != ""
}

// unstamp splits "mf#42 text" into 42 and "text"; a line without a number (a
// service of an older driver, a node without mkfifo) is 0 and the whole text.
func unstamp(text string) (seq uint64, rest string) {
	numbered, ok := strings.CutPrefix(text, stampPrefix)
	if !ok {
		return 0, text
	}
	digits, rest, _ := strings.Cut(numbered, " ")
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || seq == 0 {
		return 0, text
	}
	return seq, rest
}

// logDriver is every task's log driver: json-file, bounded, so that a node keeps a
// known amount of each task's output while the stream is down (docker service logs
// reads it, as the driver does).
func (d *Driver) logDriver() *swarm.Driver {
	return &swarm.Driver{Name: "json-file", Options: map[string]string{
		"max-size": strconv.FormatInt(d.opts.LogMaxBytes, 10),
		"max-file": strconv.Itoa(d.opts.LogMaxFiles),
	}}
}

// liveness is when each task of a service that sends heartbeats was last heard, for
// the watchdog of a stream. It outlives streams (a task silent in one stream stays
// expected in the next); safe for concurrent use.
type liveness struct {
	mu        sync.Mutex
	last      map[string]time.Time     // task -> last line or heartbeat
	allowance map[string]time.Duration // task -> silence allowed
}

func newLiveness() *liveness {
	return &liveness{last: map[string]time.Time{}, allowance: map[string]time.Duration{}}
}

// begin starts a stream: every expected task gets a fresh allowance from now.
func (l *liveness) begin(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for task := range l.last {
		l.last[task] = now
	}
}

// expect makes a running task expected, from now, if it is not yet.
func (l *liveness) expect(task string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, expected := l.last[task]; !expected {
		l.last[task], l.allowance[task] = now, logSilence
	}
}

// heard records a line of task; a heartbeat makes the task expected.
func (l *liveness) heard(task string, isHeartbeat bool, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, expected := l.last[task]; !expected && !isHeartbeat {
		return
	}
	l.last[task] = now
	if isHeartbeat {
		l.allowance[task] = logSilence
	}
}

// silent lists the expected tasks not heard for longer than their allowance.
func (l *liveness) silent(now time.Time) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for task, at := range l.last {
		if now.Sub(at) > l.allowance[task] {
			out = append(out, task)
		}
	}
	return out
}

// stalled doubles a silent task's allowance.
func (l *liveness) stalled(task string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.allowance[task] = min(2*l.allowance[task], logMaxSilence)
}

// forget stops expecting a task (it ended, or is gone).
func (l *liveness) forget(task string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, task)
	delete(l.allowance, task)
}
