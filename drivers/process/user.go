package process

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// User is who a dyno's processes run as (Options.User). A daemon run as root runs
// its dynos as an unprivileged user, so that file modes keep app code out of the
// daemon's state (its API socket is 0600 root).
type User struct {
	Name     string
	UID, GID uint32
}

// LookupUser finds the system user name.
func LookupUser(name string) (*User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("dyno user: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("dyno user %s: uid %q: %w", name, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("dyno user %s: gid %q: %w", name, u.Gid, err)
	}
	return &User{Name: name, UID: uint32(uid), GID: uint32(gid)}, nil
}

// sysProcAttr completes attr with the dyno user's credentials (and no supplementary
// groups: root's must not leak into the dyno), when there is one.
func (d *Driver) sysProcAttr(attr *syscall.SysProcAttr) *syscall.SysProcAttr {
	if u := d.opts.User; u != nil {
		attr.Credential = &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}}
	}
	return attr
}

// checkUserReaches fails unless every directory from / down to dir can be searched by
// others: the dyno user must reach its slug (a state dir under a 0700 home or
// temporary folder is the usual cause).
func checkUserReaches(u *User, dir string) error {
	if u == nil || u.UID == 0 {
		return nil
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	for path := dir; ; path = filepath.Dir(path) {
		info, err := os.Stat(path)
		switch {
		case os.IsNotExist(err):
			// Made later by the driver, 0755.
		case err != nil:
			return fmt.Errorf("process driver: %w", err)
		case info.Mode().Perm()&0o001 == 0:
			return fmt.Errorf("process driver: dynos run as %s, which cannot reach %s: %s is mode %v (chmod o+x it, or move --state)", u.Name, dir, path, info.Mode().Perm())
		}
		if path == filepath.Dir(path) {
			return nil
		}
	}
}
