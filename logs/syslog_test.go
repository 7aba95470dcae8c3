package logs_test

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/logs"
)

// framed prefixes msg with its octet count (RFC 6587).
func framed(msg string) string { return strconv.Itoa(len(msg)) + " " + msg }

func TestAppendFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		line logs.Line
		want string
	}{
		{"heroku shape", line(0, "web.1", "hello"), framed("<190>1 2026-11-23T08:00:00.123456+00:00 production shop web.1 app - hello")},
		{"empty fields are nil", logs.Line{Text: "x"}, framed("<190>1 - - - - - - x")},
		{"unprintable header bytes", logs.Line{Time: base, App: "my app", Env: "prod\n", Dyno: "wéb.1", Source: "app", Text: "a\nb"},
			framed("<190>1 2026-11-23T08:00:00.123456+00:00 prod_ my_app w__b.1 app - a\nb")},
		{"long app name cut to 48", logs.Line{Time: base, App: strings.Repeat("a", 60), Env: "e", Dyno: "d", Source: "s"},
			framed("<190>1 2026-11-23T08:00:00.123456+00:00 e " + strings.Repeat("a", 48) + " d s - ")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(logs.AppendFrame([]byte("prefix:"), tt.line))
			if got != "prefix:"+tt.want {
				t.Errorf("AppendFrame =\n%q\nwant\n%q", got, "prefix:"+tt.want)
			}
		})
	}
}

func TestParseFrame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		frame   string
		want    logs.Line
		wantN   int
		wantErr string
	}{
		{name: "ours", frame: framed("<190>1 2026-11-23T08:00:00.123456+00:00 production shop web.1 app - hello") + "rest",
			want: logs.Line{Time: time.Date(2026, 11, 23, 8, 0, 0, 123456000, time.UTC), Env: "production", App: "shop", Dyno: "web.1", Source: "app", Text: "hello"}, wantN: 76},
		{name: "heroku's (its count includes a newline)", frame: "83 <40>1 2012-11-30T06:45:29+00:00 host app web.3 - State changed from starting to up\n",
			want: logs.Line{Time: time.Date(2012, 11, 30, 6, 45, 29, 0, time.UTC), Env: "host", App: "app", Dyno: "web.3", Text: "State changed from starting to up\n"}, wantN: 86},
		{name: "no structured data", frame: framed("<1>1 - h a p m x y"), want: logs.Line{Env: "h", App: "a", Dyno: "p", Source: "m", Text: "x y"}, wantN: 21},
		{name: "structured data skipped", frame: framed(`<14>1 - h a p m [id k="v \] \"x"][id2 a="b"] text`),
			want: logs.Line{Env: "h", App: "a", Dyno: "p", Source: "m", Text: "text"}, wantN: 52},
		{name: "no message", frame: framed("<14>1 - h a p m -"), want: logs.Line{Env: "h", App: "a", Dyno: "p", Source: "m"}, wantN: 20},
		{name: "incomplete length", frame: "12", wantErr: "incomplete"},
		{name: "incomplete message", frame: "75 <190>1 2026", wantErr: "incomplete"},
		{name: "not a length", frame: "<190>1 x", wantErr: "want a length"},
		{name: "leading zero", frame: "05 <1>1", wantErr: "want a length"},
		{name: "huge length", frame: "99999999999 x", wantErr: "digits"},
		{name: "no space", frame: "5x<1>1 ", wantErr: "want a space"},
		{name: "no pri", frame: "5 hello", wantErr: "want '<' PRI"},
		{name: "pri too big", frame: framed("<192>1 "), wantErr: "out of range"},
		{name: "bad version", frame: framed("<1>2 x"), wantErr: "VERSION"},
		{name: "missing fields", frame: framed("<1>1 - h a"), wantErr: "header field"},
		{name: "bad time", frame: framed("<1>1 yesterday h a p m -"), wantErr: "timestamp"},
		{name: "unclosed structured data", frame: framed("<1>1 - h a p m [id x"), wantErr: "unclosed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, n, err := logs.ParseFrame([]byte(tt.frame))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseFrame error = %v, want one containing %q", err, tt.wantErr)
				}
				if tt.wantErr == "incomplete" && !errors.Is(err, logs.ErrShortFrame) {
					t.Errorf("error %v is not ErrShortFrame", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantN || !got.Time.Equal(tt.want.Time) || got.Env != tt.want.Env || got.App != tt.want.App ||
				got.Dyno != tt.want.Dyno || got.Source != tt.want.Source || got.Text != tt.want.Text {
				t.Errorf("ParseFrame = %+v, %d; want %+v, %d", got, n, tt.want, tt.wantN)
			}
		})
	}
}

// FuzzSyslogFrame checks that the encoder and the parser agree: any line encodes to
// a frame that parses back to it (header fields as sanitised), and any bytes either
// fail to parse or parse to a line that survives another round trip. Neither panics.
func FuzzSyslogFrame(f *testing.F) {
	f.Add("shop", "production", "app", "web.1", "hello", int64(1795420800123456), []byte("75 <190>1 2026-11-23T08:00:00.123456+00:00 production shop web.1 app - hello"))
	f.Add("", "", "", "", "", int64(0), []byte("18 <14>1 - h a p m -"))
	f.Add("a b", "-", "heroku", "router", "two\nlines\x00", int64(-1), []byte(`52 <14>1 - h a p m [id k="v \] \"x"][id2 a="b"] text`))
	f.Fuzz(func(t *testing.T, app, env, source, dyno, text string, usec int64, raw []byte) {
		in := logs.Line{App: app, Env: env, Source: source, Dyno: dyno, Text: text}
		if usec != 0 {
			in.Time = time.UnixMicro(usec)
		}
		frame := logs.AppendFrame(nil, in)
		out, n, err := logs.ParseFrame(frame)
		if err != nil {
			t.Fatalf("ParseFrame(AppendFrame(%+v)) = %v; frame %q", in, err, frame)
		}
		want := logs.SanitizeHeaderFields(in)
		if n != len(frame) || !out.Time.Equal(want.Time) || out.App != want.App || out.Env != want.Env ||
			out.Source != want.Source || out.Dyno != want.Dyno || out.Text != want.Text {
			t.Fatalf("round trip of %+v = %+v (%d of %d bytes), want %+v", in, out, n, len(frame), want)
		}

		parsed, n, err := logs.ParseFrame(raw)
		if err != nil {
			return
		}
		if n <= 0 || n > len(raw) {
			t.Fatalf("ParseFrame used %d of %d bytes", n, len(raw))
		}
		again, _, err := logs.ParseFrame(logs.AppendFrame(nil, parsed))
		if err != nil {
			t.Fatalf("re-encoding a parsed frame %+v: %v", parsed, err)
		}
		want = logs.SanitizeHeaderFields(parsed)
		if !again.Time.Equal(want.Time) || again.App != want.App || again.Env != want.Env ||
			again.Source != want.Source || again.Dyno != want.Dyno || again.Text != want.Text {
			t.Fatalf("second round trip of %+v = %+v", parsed, again)
		}
	})
}
