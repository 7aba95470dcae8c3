package h1wire

import "testing"

func TestIsCanonical(t *testing.T) {
	t.Parallel()
	for k, want := range map[string]bool{"Host": true, "X-Request-Id": true, "x-request-id": false, "X-REQUEST-ID": false, "Content-type": false, "A": true, "": true} {
		if got := IsCanonical(k); got != want {
			t.Errorf("IsCanonical(%q) = %v, want %v", k, got, want)
		}
	}
}

func TestHeadEnd(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		buf  string
		want int
	}{
		{name: "CRLF", buf: "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody", want: 27},
		{name: "bare LF", buf: "GET / HTTP/1.1\nHost: a\n\nbody", want: 24},
		{name: "bare LF then CRLF empty line", buf: "GET / HTTP/1.1\r\nHost: a\n\r\n", want: 26},
		{name: "first empty line wins", buf: "A\n\nbody\r\n\r\n", want: 3},
		{name: "incomplete", buf: "GET / HTTP/1.1\r\nHost: a\r\n", want: 0},
	}
	for _, tc := range cases {
		if got := HeadEnd([]byte(tc.buf)); got != tc.want {
			t.Errorf("%s: HeadEnd(%q) = %d, want %d", tc.name, tc.buf, got, tc.want)
		}
	}
}

func TestParseContentLength(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"5", 5, true}, {"007", 7, true},
		{"", 0, false}, {"+5", 0, false}, {"-0", 0, false}, {"0x5", 0, false},
		{"5, 5", 0, false}, {" 5", 0, false}, {"99999999999999999999", 0, false},
	}
	for _, tc := range cases {
		got, ok := ParseContentLength(tc.in)
		if ok != tc.ok || (ok && got != tc.want) {
			t.Errorf("ParseContentLength(%q) = %d, %v; want %d, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}
