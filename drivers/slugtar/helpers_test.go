package slugtar_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// entry is one tar entry for writeTarball; a regular file unless typ says otherwise.
type entry struct {
	name, body, link string
	typ              byte
	mode             int64
	size             int64 // declared size when body is empty (a header claiming more than it holds)
	pax              map[string]string
	// raw, when set, goes into the tar stream as is (see rawEntry): for entries
	// tar.Writer refuses to encode.
	raw []byte
}

// writeTarball writes entries as a gzipped tar and returns its path. A header whose
// declared size is not followed by its data is written as is (the archive is then
// truncated after it), which is how a bomb looks to the reader.
func writeTarball(t testing.TB, entries []entry) string {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range entries {
		if e.raw != nil {
			if err := tw.Flush(); err != nil {
				t.Fatal(err)
			}
			raw.Write(e.raw)
			continue
		}
		if e.typ == tar.TypeXGlobalHeader {
			if err := tw.WriteHeader(&tar.Header{Typeflag: e.typ, Name: e.name, PAXRecords: e.pax}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		typ, mode := e.typ, e.mode
		if typ == 0 {
			typ = tar.TypeReg
		}
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Mode: mode, Linkname: e.link, PAXRecords: e.pax}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
			if e.size > 0 {
				hdr.Size = e.size
			}
		}
		if typ == tar.TypeChar || typ == tar.TypeBlock {
			hdr.Devmajor, hdr.Devminor = 1, 3
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.size > 0 {
			break // the data never follows: the reader must refuse before it looks
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Flush(); err == nil {
		_ = tw.Close() // fails for a truncated archive; the bytes so far are what we want
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(raw.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "slug.tar.gz")
	if err := os.WriteFile(path, gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// makeWritable undoes read-only folders an unpack made so t.TempDir's cleanup works.
func makeWritable(t testing.TB, dir string) {
	t.Helper()
	t.Cleanup(func() {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				_ = os.Chmod(p, 0o755)
			}
			return nil
		})
	})
}

// rawEntry encodes one ustar header (and body, padded to 512-byte blocks) by hand, for
// names and records tar.Writer refuses to write but a hostile slug may hold.
func rawEntry(name string, typ byte, body string) []byte {
	block := make([]byte, 512)
	copy(block[0:100], name)
	copy(block[100:108], "0000644\x00")
	copy(block[108:116], "0000000\x00")
	copy(block[116:124], "0000000\x00")
	copy(block[124:136], fmt.Sprintf("%011o\x00", len(body)))
	copy(block[136:148], "00000000000\x00")
	block[156] = typ
	copy(block[257:265], "ustar\x0000")
	copy(block[148:156], "        ")
	sum := 0
	for _, b := range block {
		sum += int(b)
	}
	copy(block[148:156], fmt.Sprintf("%06o\x00 ", sum))
	data := make([]byte, (len(body)+511)/512*512)
	copy(data, body)
	return append(block, data...)
}

// paxRecords is the body of a PAX extended header holding records.
func paxRecords(records ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(records); i += 2 {
		rec := " " + records[i] + "=" + records[i+1] + "\n"
		n := len(rec)
		for len(strconv.Itoa(n))+len(rec) != n {
			n = len(strconv.Itoa(n)) + len(rec)
		}
		b.WriteString(strconv.Itoa(n) + rec)
	}
	return b.String()
}
