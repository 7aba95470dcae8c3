package process

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync"
)

// maxAncestry bounds the walk up a process's parents (a pid namespace nests far less).
const maxAncestry = 128

// groupSet is the process groups of the one-offs running now (long-running dynos are
// in Driver.dynos). The zero value is empty and ready.
type groupSet struct {
	mu     sync.Mutex
	groups map[int]struct{}
}

func (s *groupSet) add(pgid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.groups == nil {
		s.groups = map[int]struct{}{}
	}
	s.groups[pgid] = struct{}{}
}

func (s *groupSet) remove(pgid int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.groups, pgid)
}

// IsDynoProcess reports whether pid is, or descends from, a process of one of this
// driver's dynos (one-offs included), or cannot be told apart from one (its /proc
// entry is gone or unreadable). The daemon's API socket refuses such peers, so that
// app code cannot drive the control plane of a daemon whose dynos run as its own user.
//
// A dyno is a process group (or, on a terminal, a session) led by the process the
// driver started; pid counts as the dyno's when it, or any of its ancestors, is that
// leader or in that group or session. A process that leaves its dyno's group and
// session (setsid) and is orphaned (double fork) escapes this check: the boundary
// against that is the user (a daemon run as root runs dynos as another user) or the
// Docker driver. docs/api.md, "Trust boundary", says so.
func (d *Driver) IsDynoProcess(pid int) bool {
	groups := d.dynoGroups()
	for range maxAncestry {
		if pid <= 1 {
			return false
		}
		ppid, pgid, sid, err := procLineage(pid)
		if err != nil {
			return true
		}
		for _, id := range []int{pid, pgid, sid} {
			if _, ok := groups[id]; ok {
				return true
			}
		}
		pid = ppid
	}
	return true
}

// dynoGroups returns the process group of every running dyno and one-off.
func (d *Driver) dynoGroups() map[int]struct{} {
	groups := map[int]struct{}{}
	d.mu.Lock()
	for _, dy := range d.dynos {
		dy.mu.Lock()
		if dy.pid > 0 {
			groups[dy.pid] = struct{}{}
		}
		dy.mu.Unlock()
	}
	d.mu.Unlock()
	d.oneOffGroups.mu.Lock()
	for pgid := range d.oneOffGroups.groups {
		groups[pgid] = struct{}{}
	}
	d.oneOffGroups.mu.Unlock()
	return groups
}

// procLineage reads the parent, process group and session of pid (fields 4, 5 and 6
// of /proc/<pid>/stat).
func procLineage(pid int) (ppid, pgid, sid int, err error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	end := bytes.LastIndexByte(raw, ')') // the command name may hold spaces or ')'
	if end < 0 || end+2 > len(raw) {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: malformed", pid)
	}
	fields := bytes.Fields(raw[end+2:]) // fields[0] is field 3
	if len(fields) < 4 {
		return 0, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields)+2)
	}
	ids := make([]int, 3)
	for i := range ids {
		if ids[i], err = strconv.Atoi(string(fields[i+1])); err != nil {
			return 0, 0, 0, fmt.Errorf("/proc/%d/stat: field %d: %w", pid, i+4, err)
		}
	}
	return ids[0], ids[1], ids[2], nil
}
