package logs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// FramePriority is the PRI of every frame manifold writes: facility local7 (23),
// severity info (6), as Heroku's logplex does. Stdout and stderr are not told apart
// (the drivers merge them), so there is no err severity.
const FramePriority = 23*8 + 6

// Field limits of RFC 5424 §6; longer values are cut so that a strict receiver
// accepts every frame.
const (
	maxHostnameBytes = 255
	maxAppNameBytes  = 48
	maxProcIDBytes   = 128
	maxMsgIDBytes    = 32
	// maxFrameDigits bounds MSG-LEN: a frame is at most a few times MaxLineBytes, so
	// nine digits (1 GB) rejects garbage lengths without rejecting anything real.
	maxFrameDigits = 9
)

// ErrShortFrame says the data ends before the frame does: a stream reader should
// read more and try again.
var ErrShortFrame = errors.New("syslog frame: incomplete")

// AppendFrame appends line to dst as one RFC 5424 message with octet-counting framing
// (RFC 6587 §3.4.1): `LEN <190>1 TIMESTAMP ENV APP DYNO SOURCE - TEXT`. HOSTNAME is
// the environment, APP-NAME the app, PROCID the dyno and MSGID the source (app,
// heroku, api). Header fields are cut to RFC 5424's limits; bytes outside printable
// US-ASCII become '_' and an empty field is written as the nil value "-". The text
// is written as is: octet counting needs no escaping, so newlines survive.
func AppendFrame(dst []byte, line Line) []byte {
	// The length prefix comes first, so compute the message's length before writing
	// it: one pass and no copy.
	stamped := !line.Time.IsZero()
	if year := line.Time.UTC().Year(); year < 0 || year > 9999 {
		stamped = false
	}
	msgLen := len(framePrefix) + 4 + 3 + len(line.Text) // 4 spaces, " - "
	if stamped {
		msgLen += timestampBytes
	} else {
		msgLen++ // "-"
	}
	msgLen += fieldBytes(line.Env, maxHostnameBytes) + fieldBytes(line.App, maxAppNameBytes) +
		fieldBytes(line.Dyno, maxProcIDBytes) + fieldBytes(line.Source, maxMsgIDBytes)

	dst = strconv.AppendInt(dst, int64(msgLen), 10)
	dst = append(dst, ' ')
	dst = append(dst, framePrefix...)
	if stamped {
		dst = appendTimestamp(dst, line.Time)
	} else {
		dst = append(dst, '-')
	}
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, line.Env, maxHostnameBytes)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, line.App, maxAppNameBytes)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, line.Dyno, maxProcIDBytes)
	dst = append(dst, ' ')
	dst = appendHeaderField(dst, line.Source, maxMsgIDBytes)
	dst = append(dst, " - "...)
	return append(dst, line.Text...)
}

// framePrefix is PRI and VERSION; FramePriority is 190.
const framePrefix = "<190>1 "

// timestampBytes is the length of appendTimestamp's output.
const timestampBytes = len("2026-11-23T08:00:00.123456+00:00")

// fieldBytes is how many bytes appendHeaderField writes for value.
func fieldBytes(value string, limit int) int {
	if value == "" {
		return 1
	}
	return min(len(value), limit)
}

// appendTimestamp appends t in UTC as RFC 3339 with microseconds and a numeric offset,
// as Heroku writes it (2026-11-23T08:00:00.123456+00:00; years 0-9999). By hand:
// time.AppendFormat was a third of a frame's cost.
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	hour, minute, second := t.Clock()
	dst = appendDigits(dst, year, 4)
	dst = append(dst, '-')
	dst = appendDigits(dst, int(month), 2)
	dst = append(dst, '-')
	dst = appendDigits(dst, day, 2)
	dst = append(dst, 'T')
	dst = appendDigits(dst, hour, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, minute, 2)
	dst = append(dst, ':')
	dst = appendDigits(dst, second, 2)
	dst = append(dst, '.')
	dst = appendDigits(dst, t.Nanosecond()/1000, 6)
	return append(dst, "+00:00"...)
}

// appendDigits appends v (>= 0) zero-padded to width digits.
func appendDigits(dst []byte, v, width int) []byte {
	var buf [8]byte
	for i := width - 1; i >= 0; i-- {
		buf[i] = byte('0' + v%10)
		v /= 10
	}
	return append(dst, buf[:width]...)
}

// appendHeaderField writes a sanitised RFC 5424 header field.
func appendHeaderField(dst []byte, value string, limit int) []byte {
	if value == "" {
		return append(dst, '-')
	}
	if len(value) > limit {
		value = value[:limit]
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c < 33 || c > 126 {
			c = '_'
		}
		dst = append(dst, c)
	}
	return dst
}

// SanitizeHeaderFields returns line with App, Env, Dyno and Source as AppendFrame
// writes them and ParseFrame reads them back (cut, '_' for unprintable bytes, and
// "-" read back as empty), and Time cut to microseconds in UTC.
func SanitizeHeaderFields(line Line) Line {
	field := func(value string, limit int) string {
		s := string(appendHeaderField(nil, value, limit))
		if s == "-" {
			return ""
		}
		return s
	}
	line.Env = field(line.Env, maxHostnameBytes)
	line.App = field(line.App, maxAppNameBytes)
	line.Dyno = field(line.Dyno, maxProcIDBytes)
	line.Source = field(line.Source, maxMsgIDBytes)
	if year := line.Time.UTC().Year(); line.Time.IsZero() || year < 0 || year > 9999 {
		line.Time = time.Time{}
	} else {
		line.Time = line.Time.UTC().Truncate(time.Microsecond)
	}
	return line
}

// ParseFrame decodes the first octet-counted RFC 5424 frame of data into a Line (the
// inverse of AppendFrame: HOSTNAME is Env, APP-NAME App, PROCID Dyno, MSGID Source;
// nil values "-" become empty; structured data is skipped, and may be missing as in
// Heroku's own frames) and returns how many bytes
// it used. It returns ErrShortFrame, possibly wrapped, when data holds only part of a
// frame; any other error means the stream is corrupt from here on.
func ParseFrame(data []byte) (line Line, n int, err error) {
	i := 0
	for i < len(data) && data[i] >= '0' && data[i] <= '9' {
		i++
		if i > maxFrameDigits {
			return Line{}, 0, fmt.Errorf("syslog frame: length longer than %d digits", maxFrameDigits)
		}
	}
	if i == len(data) {
		return Line{}, 0, ErrShortFrame
	}
	if i == 0 || data[0] == '0' {
		return Line{}, 0, fmt.Errorf("syslog frame: want a length (non-zero decimal) at byte 0, got %q", data[0])
	}
	if data[i] != ' ' {
		return Line{}, 0, fmt.Errorf("syslog frame: want a space after the length at byte %d, got %q", i, data[i])
	}
	msgLen, _ := strconv.Atoi(string(data[:i])) // only digits, at most 9: cannot fail
	start := i + 1
	if len(data)-start < msgLen {
		return Line{}, 0, fmt.Errorf("%w: %d of %d message bytes", ErrShortFrame, len(data)-start, msgLen)
	}
	line, err = parseMessage(data[start : start+msgLen])
	if err != nil {
		return Line{}, 0, fmt.Errorf("syslog frame at byte %d: %w", start, err)
	}
	return line, start + msgLen, nil
}

// parseMessage decodes one RFC 5424 message (without its framing).
func parseMessage(msg []byte) (Line, error) {
	var line Line
	if len(msg) == 0 || msg[0] != '<' {
		return line, errors.New("want '<' PRI")
	}
	end := 1
	for end < len(msg) && end <= 4 && msg[end] >= '0' && msg[end] <= '9' {
		end++
	}
	if end == 1 || end >= len(msg) || msg[end] != '>' {
		return line, errors.New("want PRI as 1-3 digits closed by '>'")
	}
	if pri, _ := strconv.Atoi(string(msg[1:end])); pri > 191 {
		return line, fmt.Errorf("PRI %d out of range 0-191", pri)
	}
	rest := msg[end+1:]
	if len(rest) < 2 || rest[0] != '1' || rest[1] != ' ' {
		return line, errors.New("want VERSION 1")
	}
	rest = rest[2:]

	var fields [5]string
	for k := range fields {
		sp := bytes.IndexByte(rest, ' ')
		if sp <= 0 {
			return line, fmt.Errorf("header field %d missing or empty", k+2)
		}
		fields[k] = string(rest[:sp])
		rest = rest[sp+1:]
	}
	if fields[0] != "-" {
		t, err := time.Parse(time.RFC3339Nano, fields[0])
		if err != nil {
			return line, fmt.Errorf("timestamp: %w", err)
		}
		line.Time = t.UTC()
	}
	nilToEmpty := func(s string) string {
		if s == "-" {
			return ""
		}
		return s
	}
	line.Env = nilToEmpty(fields[1])
	line.App = nilToEmpty(fields[2])
	line.Dyno = nilToEmpty(fields[3])
	line.Source = nilToEmpty(fields[4])

	// STRUCTURED-DATA: "-" or one or more [ID param="value" ...] with \] \" \\ escapes.
	switch {
	case len(rest) > 0 && rest[0] == '-':
		rest = rest[1:]
	case len(rest) > 0 && rest[0] == '[':
		for len(rest) > 0 && rest[0] == '[' {
			close, err := endOfElement(rest)
			if err != nil {
				return line, err
			}
			rest = rest[close+1:]
		}
	default:
		// No STRUCTURED-DATA at all: Heroku's own frames look like this
		// (`… host app web.3 - State changed …`), so read the rest as MSG.
		line.Text = string(rest)
		return line, nil
	}
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return line, errors.New("want a space before MSG")
		}
		rest = rest[1:]
	}
	line.Text = string(rest)
	return line, nil
}

// endOfElement returns the index of the ']' closing the SD-ELEMENT that opens sd.
func endOfElement(sd []byte) (int, error) {
	quoted := false
	for i := 1; i < len(sd); i++ {
		switch c := sd[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ']' && !quoted:
			return i, nil
		}
	}
	return 0, errors.New("structured data: unclosed '['")
}
