package spec

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"path"
	"slices"
)

// DigestDir returns "sha256:<hex>" over the files under dir of fsys: for each regular
// file its path relative to dir, whether it is executable, and its contents; for each
// symbolic link its target (when fsys can read links). Files are taken in sorted
// order, so the digest does not depend on how fsys lists them; .git folders and empty
// folders do not count, as git does not track them. Two trees with the same digest
// build the same slug, which is how promotion reuses a slug.
func DigestDir(fsys fs.FS, dir string) (string, error) {
	type item struct {
		rel  string
		kind byte // 'f' file, 'x' executable file, 'l' symlink
	}
	var items []item
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" && p != dir {
				return fs.SkipDir
			}
			return nil
		}
		rel := p[len(dir):]
		if dir != "." {
			rel = rel[1:] // the slash after dir
		} else {
			rel = p
		}
		switch mode := d.Type(); {
		case mode.IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			kind := byte('f')
			if info.Mode().Perm()&0o111 != 0 {
				kind = 'x'
			}
			items = append(items, item{rel: rel, kind: kind})
		case mode&fs.ModeSymlink != 0:
			items = append(items, item{rel: rel, kind: 'l'})
		}
		// Devices, sockets and pipes are not source code.
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digest %s: %w", dir, err)
	}
	slices.SortFunc(items, func(a, b item) int {
		switch {
		case a.rel < b.rel:
			return -1
		case a.rel > b.rel:
			return 1
		}
		return 0
	})
	h := sha256.New()
	for _, it := range items {
		full := path.Join(dir, it.rel)
		switch it.kind {
		case 'l':
			rl, ok := fsys.(fs.ReadLinkFS)
			if !ok {
				// Without link support the link's content stands in for it.
				if err := hashFile(h, fsys, full, it.rel, 'f'); err != nil {
					return "", err
				}
				continue
			}
			target, err := rl.ReadLink(full)
			if err != nil {
				return "", fmt.Errorf("digest %s: %w", full, err)
			}
			writeField(h, []byte{'l'})
			writeField(h, []byte(it.rel))
			writeField(h, []byte(target))
		default:
			if err := hashFile(h, fsys, full, it.rel, it.kind); err != nil {
				return "", err
			}
		}
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

func hashFile(h hash.Hash, fsys fs.FS, full, rel string, kind byte) error {
	f, err := fsys.Open(full)
	if err != nil {
		return fmt.Errorf("digest %s: %w", full, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("digest %s: %w", full, err)
	}
	if info.IsDir() {
		return nil // a link to a folder, read through an FS without link support
	}
	writeField(h, []byte{kind})
	writeField(h, []byte(rel))
	// Length-prefix the contents so that no two trees hash the same bytes.
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(info.Size()))
	h.Write(n[:])
	written, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("digest %s: %w", full, err)
	}
	if written != info.Size() {
		return fmt.Errorf("digest %s: file changed while reading (%d of %d bytes)", full, written, info.Size())
	}
	return nil
}

// writeField writes a length-prefixed field.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}
