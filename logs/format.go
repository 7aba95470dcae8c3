package logs

import (
	"hash/fnv"
	"io"
	"strconv"
)

// formatTime is Heroku's `heroku logs` timestamp: microseconds and a numeric offset.
const formatTime = "2006-01-02T15:04:05.000000-07:00"

// dynoColors are ANSI foreground colours for the `time source[dyno]:` prefix; a dyno
// name always hashes to the same one. Red is left out: it reads as an error.
var dynoColors = [...]int{36, 32, 33, 35, 34, 96, 92, 93, 95, 94}

// Format writes line in Heroku's format, UTC, with a newline:
//
//	2026-11-23T08:00:00.123456+00:00 app[web.1]: message
//
// With color, the prefix up to the colon is coloured per dyno name (stable across
// runs and processes), as the Heroku CLI does on a terminal.
func Format(w io.Writer, line Line, color bool) error {
	_, err := w.Write(AppendFormat(make([]byte, 0, 64+len(line.Text)), line, color))
	return err
}

// AppendFormat is Format appending to dst.
func AppendFormat(dst []byte, line Line, color bool) []byte {
	if color {
		dst = append(dst, "\x1b["...)
		dst = strconv.AppendInt(dst, int64(DynoColor(line.Dyno)), 10)
		dst = append(dst, 'm')
	}
	dst = line.Time.UTC().AppendFormat(dst, formatTime)
	dst = append(dst, ' ')
	dst = append(dst, line.Source...)
	dst = append(dst, '[')
	dst = append(dst, line.Dyno...)
	dst = append(dst, "]:"...)
	if color {
		dst = append(dst, "\x1b[0m"...)
	}
	dst = append(dst, ' ')
	dst = append(dst, line.Text...)
	return append(dst, '\n')
}

// DynoColor returns the ANSI colour code (30-97) Format uses for dyno.
func DynoColor(dyno string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(dyno)) // a hash never fails
	return dynoColors[h.Sum32()%uint32(len(dynoColors))]
}
