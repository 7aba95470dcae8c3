package slug

import (
	"context"
	"io"

	"github.com/manifold-paas/manifold/drivers/slugtar"
)

// The slug tarball format itself (pack, scan, safe unpack) lives in drivers/slugtar,
// shared with the drivers that unpack slugs: the drivers may not import reconciler/...
// (the data flows one way), so the format sits below both.

// errOverLimit is what pack's error wraps once the compressed slug passes the limit;
// the builder turns it into ErrTooLarge.
var errOverLimit = slugtar.ErrTooLarge

// pack writes the tree at dir as a slug tarball to w ("./bin/web" entries, modes kept,
// owners zeroed) and returns its compressed size; see slugtar.Pack.
func pack(ctx context.Context, dir string, w io.Writer, limit int64) (int64, error) {
	return slugtar.Pack(ctx, dir, w, limit)
}

// Unpack extracts the slug tarball into dir (created when missing), refusing entries
// that would land outside it; see slugtar.Unpack, which it calls, for the rules.
func Unpack(ctx context.Context, tarball, dir string) error {
	return slugtar.Unpack(ctx, tarball, dir)
}
