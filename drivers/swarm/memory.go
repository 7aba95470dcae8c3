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
// (the manager's task log, which no dyno can read), and accepts a sample only with
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

// nonceTimeout bounds reading the head of a task's log for its nonce.
const nonceTimeout = 10 * time.Second

// taskNonce is what the driver knows of a task's samples.
type taskNonce struct {
	nonce   string // "" when it could not be read: the task's samples are refused
	lastSeq int
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
func (d *Driver) marker(line logs.Line) bool {
	fields := strings.Fields(strings.TrimPrefix(line.Text, markerPrefix))
	switch {
	case len(fields) == 2 && fields[0] == "nonce":
		return true // read from the task's own log when its first sample comes
	case len(fields) != 5 || fields[0] != "mem":
		return false
	}
	taskID, mac := fields[1], fields[4]
	seq, err1 := strconv.Atoi(fields[2])
	used, err2 := strconv.ParseInt(fields[3], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	d.mu.Lock()
	name, named := d.taskNames[taskID]
	d.mu.Unlock()
	if !named || name.spec.App != line.App || name.spec.Env != line.Env || name.spec.MemoryBytes <= 0 {
		return false
	}
	nonce, ok := d.nonce(taskID)
	if !ok || !validSample(nonce.nonce, seq, used, mac) || seq <= nonce.lastSeq {
		d.log.Warn("memory sample refused: not the boot script's", "task", taskID, "app", line.App, "dyno", line.Dyno)
		return false
	}
	d.mu.Lock()
	nonce.lastSeq = seq
	d.nonces[taskID] = nonce
	dyno, listed := d.last[name.dyno]
	d.mu.Unlock()
	quota := name.spec.MemoryBytes
	d.platform(name.spec, name.name, supervisor.MemoryUsage(used, quota))
	d.platform(name.spec, name.name, supervisor.MsgR14)
	if !listed {
		dyno = drivers.Dyno{ID: name.dyno, Spec: name.spec, Name: name.name, State: drivers.StateUp}
	}
	dyno.MemoryBytes = used
	d.events.Push(drivers.Event{Dyno: dyno, From: dyno.State, To: dyno.State, Code: "R14"})
	return true
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

// nonce is the task's nonce, read once from the first line of its log.
func (d *Driver) nonce(taskID string) (taskNonce, bool) {
	d.mu.Lock()
	n, ok := d.nonces[taskID]
	d.mu.Unlock()
	if ok {
		return n, n.nonce != ""
	}
	ctx, cancel := context.WithTimeout(d.ctx, nonceTimeout)
	defer cancel()
	nonce, err := d.firstLineNonce(ctx, taskID)
	if err != nil {
		d.log.Warn("memory sample of the task refused: no nonce at the head of its log", "task", taskID, "err", err)
		if !errors.Is(err, errNoNonce) {
			return taskNonce{}, false // the manager did not answer: ask again next time
		}
	}
	d.mu.Lock()
	d.nonces[taskID] = taskNonce{nonce: nonce}
	d.mu.Unlock()
	return taskNonce{nonce: nonce}, nonce != ""
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
	fields := strings.Fields(text)
	if len(fields) != 3 || fields[0] != markerPrefix || fields[1] != "nonce" || len(fields[2]) != 32 {
		return "", errNoNonce
	}
	return fields[2], nil
}
