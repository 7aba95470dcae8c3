// Package slugtar is the slug tarball format: pack a folder into a gzipped tar of /app
// and unpack one safely. It is a leaf: reconciler/slug packs with it, the drivers read
// and unpack with it, and it imports nothing of manifold's own.
package slugtar

import (
	"context"
	"errors"
	"io"
)

// Sentinel errors a caller decides on with errors.Is.
var (
	// ErrUnsafeSlug is wrapped by errors about entries that would escape the slug's
	// folder (absolute names, .. components, symlinks or hard links pointing outside)
	// or that a slug may not hold (devices, fifos, sparse files).
	ErrUnsafeSlug = errors.New("unsafe slug entry")
	// ErrTooLarge is wrapped when a slug passes a size limit: Pack's limit on the
	// compressed stream, or MaxUnpackedBytes / MaxEntries when reading one.
	ErrTooLarge = errors.New("slug too large")
)

// Limits against a hostile or broken slug tarball: slugs are made by manifold's builder,
// but reading one must still never fill the disk (a few bytes of gzip can claim
// terabytes). A 500 MB compressed slug, the builder's default cap, is far below them.
const (
	// MaxUnpackedBytes bounds the sum of a slug's regular file sizes.
	MaxUnpackedBytes int64 = 8 << 30
	// MaxEntries bounds the number of entries in a slug.
	MaxEntries = 1 << 20
	// maxTrailingBytes bounds the bytes read after the tar's end-of-archive marker
	// while checking the gzip trailer (tar(1) pads to 10 KiB records).
	maxTrailingBytes = 1 << 20
)

// limits are the bounds one read works under; tests shrink them.
type limits struct {
	bytes   int64
	entries int
}

func defaultLimits() limits { return limits{bytes: MaxUnpackedBytes, entries: MaxEntries} }

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
