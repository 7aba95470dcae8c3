package slug

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/manifold-paas/manifold/spec"
)

// walkSource calls fn for every entry of the source tree at root, in lexical order,
// with its slash-separated path relative to root. It leaves out .git folders (Heroku
// never ships them) and the folders in skip (absolute paths: the builder's own state
// when it lives inside the source, as with `manifold build .`).
func walkSource(root string, skip map[string]bool, fn func(rel string, path string, d fs.DirEntry) error) error {
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == root {
			return nil
		}
		if d.IsDir() && (d.Name() == ".git" || skip[path]) {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		return fn(filepath.ToSlash(rel), path, d)
	})
}

// DigestDir returns "sha256:<hex>" over the source tree at dir, computed as
// spec.DigestDir does for spec.Source.Digest (so `manifold build` and the daemon agree
// on keys). It is what Build uses when Request.SourceDigest is empty.
func DigestDir(dir string) (string, error) {
	d, err := spec.DigestDir(os.DirFS(dir), ".")
	if err != nil {
		return "", fmt.Errorf("digest source %s: %w", dir, err)
	}
	return d, nil
}

// digestDir is DigestDir leaving out the folders in skip (the builder's own state,
// when it lives inside the source: `manifold build .` with ./.manifold). Its digests
// differ from spec's, which is fine: such a tree is only ever built from here.
func digestDir(dir string, skip map[string]bool) (string, error) {
	tree := sha256.New()
	err := walkSource(dir, skip, func(rel, path string, d fs.DirEntry) error {
		info, err := d.Info()
		if err != nil {
			return err
		}
		mode := info.Mode()
		switch {
		case mode.IsDir():
			fmt.Fprintf(tree, "dir %s %o\x00", rel, mode.Perm())
		case mode&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(tree, "symlink %s %s\x00", rel, target)
		case mode.IsRegular():
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			content := sha256.New()
			_, err = io.Copy(content, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("read %s: %w", path, err)
			}
			fmt.Fprintf(tree, "file %s %o %x\x00", rel, mode.Perm(), content.Sum(nil))
		default:
			// Sockets, fifos and devices have no place in a slug; copyTree skips them too.
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("digest source %s: %w", dir, err)
	}
	return "sha256:" + hex.EncodeToString(tree.Sum(nil)), nil
}

// copyTree copies the source tree at src into dst (which must not exist yet), keeping
// permission bits and symlinks.
func copyTree(src, dst string, skip map[string]bool) error {
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	return walkSource(src, skip, func(rel, path string, d fs.DirEntry) error {
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, filepath.FromSlash(rel))
		mode := info.Mode()
		switch {
		case mode.IsDir():
			// Owner-writable so that buildpacks can add files to every folder.
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
			return os.Chmod(target, mode.Perm()|0o700)
		case mode&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case mode.IsRegular():
			return copyFile(path, target, mode.Perm())
		}
		return nil
	})
}

func copyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return err
	}
	// Chmod after: OpenFile's mode goes through the umask.
	return os.Chmod(dst, perm)
}

// removeTree removes a build's scratch folder even when a buildpack left read-only
// folders in it (Go's module cache does).
func removeTree(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(path, 0o755)
		}
		return nil
	})
	return os.RemoveAll(dir)
}
