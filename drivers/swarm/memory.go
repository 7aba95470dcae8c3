package swarm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/supervisor"
	"github.com/manifold-paas/manifold/logs"
)

// R14 on Swarm: the manager cannot read a remote node's container stats, so each
// task samples its own memory cgroup and writes a marker line, which the driver
// turns into the platform's R14 lines and event. The kernel's limit is the hard
// limit (R15): MemoryHardLimit times the quota, Heroku's 200% by default.
//
// A marker must come from the boot script, not from the app, which writes to the
// same stdout. The boot script draws a nonce from /dev/urandom into an unexported
// shell variable (not in any environment, argument or file) and writes it as the
// task's very first line, before the app starts. Each sample is written as
// "<markerPrefix> mem SEQ BYTES MAC", MAC = the first 32 hex of sha256("NONCE SEQ
// BYTES"). The driver takes the nonce from the first line of that task's own log
// (line 1 of the stream, else the manager's task log, which no dyno can read; never
// waiting for the manager on the log follower), and accepts a sample only with
// the right MAC and a sequence number above the last one accepted. So an app can
// forge no sample, nor replay one, nor speak for another task; a marker line the app
// wrote is published as the app's own line. What it cannot prevent: an app that can
// ptrace its parent shell (same uid, no Yama) could read the nonce, and an app can
// kill the sampler; either way it only silences or fakes its own dyno's R14.
const markerPrefix = "MANIFOLD-DYNO-MANAGER"

// memoryAnnounce starts the boot script: the nonce line, for dynos with a quota.
const memoryAnnounce = `if [ -n "$MANIFOLD_MEMORY_QUOTA" ]; then
  mf_nonce=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  echo "` + markerPrefix + ` nonce $mf_nonce"
fi
`

// memorySampler runs beside the app: every MANIFOLD_MEMORY_SECONDS it reads the
// cgroup's anonymous memory plus swap (cgroup v1 or v2: what Heroku counts, not the
// page cache of the unpacked slug) and writes a sample when it is over the quota.
const memorySampler = `if [ -n "$mf_nonce" ]; then (
  mf_seq=0
  while sleep "$MANIFOLD_MEMORY_SECONDS"; do
    if [ -r /sys/fs/cgroup/memory.stat ]; then
      mf_swap=$(cat /sys/fs/cgroup/memory.swap.current 2>/dev/null || echo 0)
      mf_used=$(awk -v s="$mf_swap" '$1 == "anon" { print $2 + s }' /sys/fs/cgroup/memory.stat)
    else
      mf_used=$(awk '$1 == "total_rss" || $1 == "total_swap" { n += $2 } END { print n + 0 }' /sys/fs/cgroup/memory/memory.stat 2>/dev/null)
    fi
    [ -n "$mf_used" ] && [ "$mf_used" -gt "$MANIFOLD_MEMORY_QUOTA" ] || continue
    mf_seq=$((mf_seq + 1))
    mf_mac=$(printf '%s %s %s' "$mf_nonce" "$mf_seq" "$mf_used" | sha256sum | cut -c1-32)
    echo "` + markerPrefix + ` mem $MANIFOLD_TASK_ID $mf_seq $mf_used $mf_mac"
  done
) & fi
`

// memoryEnv tells a task's sampler its quota, cadence and task ID (Swarm fills it in).
func (d *Driver) memoryEnv(quota int64) []string {
	return []string{
		"MANIFOLD_MEMORY_QUOTA=" + strconv.FormatInt(quota, 10),
		"MANIFOLD_MEMORY_SECONDS=" + strconv.Itoa(max(1, int(d.opts.MemoryReportInterval/time.Second))),
		"MANIFOLD_TASK_ID={{.Task.ID}}",
	}
}

// hardLimit is the memory limit the kernel enforces: MemoryHardLimit times the quota.
func (d *Driver) hardLimit(quota int64) int64 {
	return int64(float64(quota) * d.opts.MemoryHardLimit)
}

// forgetNonces drops what is known of tasks no dyno runs any more.
func (d *Driver) forgetNonces(names map[string]taskName) {
	for id := range d.nonces {
		if _, ok := names[id]; !ok {
			delete(d.nonces, id)
		}
	}
}

// nonceTimeout bounds reading the head of a task's log for its nonce;
// maxPendingSamples bounds a task's samples held while it is read (one comes every
// MemoryReportInterval).
const (
	nonceTimeout      = 10 * time.Second
	maxPendingSamples = 4
)

// taskNonce is what the driver knows of a task's samples.
type taskNonce struct {
	nonce   string // "" when it could not be read: the task's samples are refused
	lastSeq int
	// fetching: the nonce is being read from the task's log; pending are the
	// samples that came meanwhile, checked once it is known.
	fetching bool
	pending  []memorySample
}

// memorySample is a marker line that claims to be a sample of task.
type memorySample struct {
	line logs.Line
	task string
	name taskName
	seq  int
	used int64
	mac  string
}

// markerSink publishes every line to next but the boot script's markers, which it
// turns into platform lines (see markerPrefix).
type markerSink struct {
	next drivers.LogSink
	d    *Driver
}

func (s markerSink) Publish(line logs.Line) {
	if line.Source == logs.SourceApp && strings.HasPrefix(line.Text, markerPrefix+" ") && s.d.marker(line) {
		return
	}
	s.next.Publish(line)
}

// marker handles a marker line; false: it is no genuine one (publish it as the app's).
// It never waits for the manager: a sample whose task's nonce is not known yet is
// held until it is (it is published as the app's line then if it is no genuine one).
func (d *Driver) marker(line logs.Line) bool {
	fields := strings.Fields(strings.TrimPrefix(line.Text, markerPrefix))
	switch {
	case len(fields) == 2 && fields[0] == "nonce":
		return true // learnt from the stream's line 1 (learnNonce) or the task's log
	case len(fields) != 5 || fields[0] != "mem":
		return false
	}
	s := memorySample{line: line, task: fields[1], mac: fields[4]}
	var err1, err2 error
	s.seq, err1 = strconv.Atoi(fields[2])
	s.used, err2 = strconv.ParseInt(fields[3], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	d.mu.Lock()
	name, named := d.taskNames[s.task]
	d.mu.Unlock()
	if !named || name.spec.App != line.App || name.spec.Env != line.Env || name.spec.MemoryBytes <= 0 {
		return false
	}
	s.name = name
	return d.sample(s)
}

// sample takes a sample whose MAC is right under the task's nonce, or holds it
// while the nonce is read; false: refused.
func (d *Driver) sample(s memorySample) bool {
	d.mu.Lock()
	n, known := d.nonces[s.task]
	if !known || n.fetching {
		if len(n.pending) >= maxPendingSamples {
			d.mu.Unlock()
			d.log.Warn("memory sample refused: too many wait for the task's nonce", "task", s.task, "app", s.line.App, "dyno", s.line.Dyno)
			return false
		}
		fetch := !n.fetching
		n.fetching = true
		n.pending = append(n.pending, s)
		d.nonces[s.task] = n
		d.mu.Unlock()
		if fetch {
			d.fetchNonce(s.task)
		}
		return true
	}
	accepted := d.verifyLocked(s)
	d.mu.Unlock()
	if !accepted {
		d.log.Warn("memory sample refused: not the boot script's", "task", s.task, "app", s.line.App, "dyno", s.line.Dyno)
		return false
	}
	d.report(s)
	return true
}

// verifyLocked checks a sample against its task's known nonce and records its
// sequence number; the caller holds d.mu.
func (d *Driver) verifyLocked(s memorySample) bool {
	n := d.nonces[s.task]
	if !validSample(n.nonce, s.seq, s.used, s.mac) || s.seq <= n.lastSeq {
		return false
	}
	n.lastSeq = s.seq
	d.nonces[s.task] = n
	return true
}

// report turns a sample taken into the platform's R14 lines and event.
func (d *Driver) report(s memorySample) {
	d.mu.Lock()
	dyno, listed := d.last[s.name.dyno]
	d.mu.Unlock()
	spec, quota := s.name.spec, s.name.spec.MemoryBytes
	d.platform(spec, s.name.name, supervisor.MemoryUsage(s.used, quota))
	d.platform(spec, s.name.name, supervisor.MsgR14)
	if !listed {
		dyno = drivers.Dyno{ID: s.name.dyno, Spec: spec, Name: s.name.name, State: drivers.StateUp}
	}
	dyno.MemoryBytes = s.used
	d.events.Push(drivers.Event{Dyno: dyno, From: dyno.State, To: dyno.State, Code: "R14"})
}

// validSample checks a sample's MAC.
func validSample(nonce string, seq int, used int64, mac string) bool {
	if nonce == "" {
		return false
	}
	sum := sha256.Sum256([]byte(nonce + " " + strconv.Itoa(seq) + " " + strconv.FormatInt(used, 10)))
	want := hex.EncodeToString(sum[:])[:32]
	return subtle.ConstantTimeCompare([]byte(want), []byte(mac)) == 1
}

// learnNonce takes a task's nonce from its line 1 in the service's stream, when
// that is the first line the stream brought of the task: the boot script numbers
// the lines (stampOutput) and writes the nonce first, so no line of the app's is
// number 1, and no lookup of the task's log is needed.
func (d *Driver) learnNonce(taskID, text string) {
	nonce, ok := parseNonceLine(text)
	if !ok {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, known := d.nonces[taskID]; !known {
		d.nonces[taskID] = taskNonce{nonce: nonce}
	}
}

// fetchNonce reads the task's nonce from the head of its log, beside the log
// follower (which must not wait for the manager), then checks the samples held
// meanwhile.
func (d *Driver) fetchNonce(taskID string) {
	d.mu.Lock()
	closed := d.closed
	if !closed {
		d.wg.Add(1)
	}
	d.mu.Unlock()
	if closed {
		d.settleNonce(taskID, "", ErrClosed)
		return
	}
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, nonceTimeout)
		nonce, err := d.firstLineNonce(ctx, taskID)
		cancel()
		d.settleNonce(taskID, nonce, err)
	}()
}

// settleNonce records what the lookup found and checks the samples held (in one
// go, so that a later sample cannot overtake them): those refused are published as
// the app's lines. A task whose log has no nonce at its head gets none of its
// samples taken; when the manager did not answer, the next sample asks again.
func (d *Driver) settleNonce(taskID, nonce string, err error) {
	if err != nil {
		d.log.Warn("memory sample of the task refused: no nonce at the head of its log", "task", taskID, "err", err)
	}
	d.mu.Lock()
	held := d.nonces[taskID].pending
	if err != nil && !errors.Is(err, errNoNonce) {
		delete(d.nonces, taskID)
	} else {
		d.nonces[taskID] = taskNonce{nonce: nonce}
	}
	taken := make([]bool, len(held))
	for i, s := range held {
		taken[i] = err == nil && d.verifyLocked(s)
	}
	d.mu.Unlock()
	for i, s := range held {
		if taken[i] {
			d.report(s)
			continue
		}
		if err == nil {
			d.log.Warn("memory sample refused: not the boot script's", "task", s.task, "app", s.line.App, "dyno", s.line.Dyno)
		}
		d.appLogs.Publish(s.line)
	}
}

// errNoNonce says a task's log does not begin with the boot script's nonce: none of
// its samples is taken.
var errNoNonce = errors.New("the first line is not the boot script's nonce")

// firstLineNonce reads the task's first stdout line through the manager.
func (d *Driver) firstLineNonce(ctx context.Context, taskID string) (string, error) {
	rc, err := d.cli.TaskLogs(ctx, taskID, container.LogsOptions{ShowStdout: true})
	if err != nil {
		return "", err
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, io.Discard, rc)
		pw.CloseWithError(err)
	}()
	defer pr.Close()
	first, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil && first == "" {
		if errors.Is(err, io.EOF) {
			return "", errNoNonce
		}
		return "", err
	}
	// The boot script numbers its lines (stampOutput): the nonce is line 1, written
	// before the app starts, so no line of the app's can stand in for it.
	seq, text := unstamp(strings.TrimRight(first, "\r\n"))
	if seq > 1 {
		return "", errNoNonce
	}
	nonce, ok := parseNonceLine(text)
	if !ok {
		return "", errNoNonce
	}
	return nonce, nil
}

// parseNonceLine reads the boot script's nonce line (without its number).
func parseNonceLine(text string) (string, bool) {
	fields := strings.Fields(text)
	if len(fields) != 3 || fields[0] != markerPrefix || fields[1] != "nonce" || len(fields[2]) != 32 {
		return "", false
	}
	return fields[2], true
}
