package process

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/manifold-paas/manifold/drivers/supervisor"
)

// Defaults of the memory options: Heroku's, as the supervisor has them.
const (
	DefaultMemoryInterval       = supervisor.DefaultMemoryInterval
	DefaultMemoryReportInterval = supervisor.DefaultMemoryReportInterval
	DefaultMemoryHardLimit      = supervisor.DefaultMemoryHardLimit
)

// memScanner measures the memory of process groups. One scan of /proc serves every
// dyno's watcher for maxAge, so the cost per interval is one read of each process's
// stat file whatever the number of dynos.
type memScanner struct {
	procDir  string
	pageSize int64
	maxAge   time.Duration

	mu     sync.Mutex
	at     time.Time
	groups map[int][]groupMember // by pgid
}

// groupMember is one process of a group and its resident set in bytes.
type groupMember struct {
	pid int
	rss int64
}

func newMemScanner(procDir string, maxAge time.Duration) *memScanner {
	return &memScanner{procDir: procDir, pageSize: int64(os.Getpagesize()), maxAge: maxAge}
}

// usage is the memory that the processes of group pgid use, in bytes: the sum of
// their resident sets, from one shared scan. Summed RSS counts pages that forked
// workers share once per worker, so when that sum is over limit the members are
// measured again by proportional set size plus swap (smaps_rollup), which counts a
// shared page once across its sharers, as a container's cgroup does. members is 0
// when the group is gone.
func (s *memScanner) usage(pgid int, limit int64) (used int64, members int) {
	s.mu.Lock()
	if s.groups == nil || time.Since(s.at) >= s.maxAge {
		s.groups = s.scan()
		s.at = time.Now()
	}
	group := s.groups[pgid]
	s.mu.Unlock()
	var rss int64
	for _, m := range group {
		rss += m.rss
	}
	if rss <= limit {
		return rss, len(group)
	}
	var pss int64
	for _, m := range group {
		v, err := s.pss(m.pid)
		if err != nil {
			v = m.rss // no smaps_rollup (old kernel, gone meanwhile): RSS is the upper bound
		}
		pss += v
	}
	return pss, len(group)
}

// scan reads every process's pgid and RSS (fields 5 and 24 of /proc/<pid>/stat).
// Processes that vanish during the scan are skipped.
func (s *memScanner) scan() map[int][]groupMember {
	groups := make(map[int][]groupMember)
	dir, err := os.Open(s.procDir)
	if err != nil {
		return groups
	}
	names, _ := dir.Readdirnames(-1)
	dir.Close()
	buf := make([]byte, 0, 512)
	for _, name := range names {
		if name == "" || name[0] < '0' || name[0] > '9' {
			continue
		}
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		buf, err = readFileInto(s.procDir+"/"+name+"/stat", buf[:0])
		if err != nil {
			continue
		}
		pgid, pages, ok := parseStatMemory(buf)
		if !ok {
			continue
		}
		groups[pgid] = append(groups[pgid], groupMember{pid: pid, rss: pages * s.pageSize})
	}
	return groups
}

// readFileInto reads a small /proc file into buf (reused between files). Raw system
// calls, as the scan reads every process's stat file each sample: os.Open would add
// a netpoller registration attempt and a second read per file (BenchmarkMemoryScan).
func readFileInto(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf, err
	}
	defer unix.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil || n <= 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
		// A /proc file comes whole in one read when it fits: one short read is the end.
		if len(buf) < cap(buf) {
			return buf, nil
		}
	}
}

// parseStatMemory takes the pgid (field 5) and the resident pages (field 24) from a
// /proc/<pid>/stat line. The command name (field 2) is in parentheses and may hold
// spaces or ')', so fields are counted after its last ')'. It allocates nothing: the
// scan parses every process's line on every sample.
func parseStatMemory(stat []byte) (pgid int, rssPages int64, ok bool) {
	end := bytes.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, 0, false
	}
	rest := stat[end+1:]
	var pgidField, rssField []byte
	for field := 3; field <= 24; field++ { // field 3 is the first after ')'
		var value []byte
		value, rest = nextField(rest)
		if value == nil {
			return 0, 0, false
		}
		switch field {
		case 5:
			pgidField = value
		case 24:
			rssField = value
		}
	}
	pgid64, ok := parseDecimal(pgidField)
	if !ok || pgid64 <= 0 {
		return 0, 0, false
	}
	rssPages, ok = parseDecimal(rssField)
	if !ok {
		return 0, 0, false
	}
	return int(pgid64), rssPages, true
}

// nextField splits the first space-separated field off b; nil when none is left.
func nextField(b []byte) (field, rest []byte) {
	start := 0
	for start < len(b) && (b[start] == ' ' || b[start] == '\n') {
		start++
	}
	if start == len(b) {
		return nil, nil
	}
	end := start
	for end < len(b) && b[end] != ' ' && b[end] != '\n' {
		end++
	}
	return b[start:end], b[end:]
}

// parseDecimal parses a non-negative decimal number of at most 18 digits.
func parseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// pss is pid's proportional set size plus its proportional swap, in bytes.
func (s *memScanner) pss(pid int) (int64, error) {
	f, err := os.Open(s.procDir + "/" + strconv.Itoa(pid) + "/smaps_rollup")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return parseSmapsRollup(f)
}

// parseSmapsRollup sums the Pss and SwapPss lines (in kB) of smaps_rollup.
func parseSmapsRollup(f *os.File) (int64, error) {
	var total int64
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok || (string(key) != "Pss" && string(key) != "SwapPss") {
			continue
		}
		fields := bytes.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %s: %w", f.Name(), key, err)
		}
		total += kb << 10
		found = found || string(key) == "Pss"
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("%s: %w", f.Name(), err)
	}
	if !found {
		return 0, fmt.Errorf("%s: no Pss line", f.Name())
	}
	return total, nil
}

// groupMeter measures and kills a process group that is no dyno's run (a one-off's)
// for supervisor.WatchMemory.
type groupMeter struct {
	mem  *memScanner
	pgid int
	kill func(syscall.Signal) error
}

func (g groupMeter) Memory(limit int64) (int64, bool) {
	used, members := g.mem.usage(g.pgid, limit)
	return used, members > 0
}

func (g groupMeter) Signal(sig syscall.Signal) error { return g.kill(sig) }
