package swarm

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestGuardSources(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		want    []netip.Prefix
		wantErr bool
	}{
		{name: "the slug URL's host", opts: Options{SlugURL: "http://10.0.0.5:7070"}, want: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}},
		{name: "an IPv6 slug URL host", opts: Options{SlugURL: "http://[fd00::5]:7070"}, want: []netip.Prefix{netip.MustParsePrefix("fd00::5/128")}},
		{name: "loopback: only the node itself", opts: Options{SlugURL: "http://127.0.0.1:7070"}, want: []netip.Prefix{}},
		{name: "unspecified: only the node itself", opts: Options{SlugURL: "http://[::]:7070"}, want: []netip.Prefix{}},
		{name: "given sources win, masked", opts: Options{SlugURL: "http://10.0.0.5:7070", RouterSources: []netip.Prefix{netip.MustParsePrefix("192.168.1.7/24")}},
			want: []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}},
		{name: "given empty: only the node itself", opts: Options{SlugURL: "http://10.0.0.5:7070", RouterSources: []netip.Prefix{}}, want: []netip.Prefix{}},
		{name: "an invalid source", opts: Options{RouterSources: []netip.Prefix{{}}}, wantErr: true},
		{name: "an IPv4-mapped source", opts: Options{RouterSources: []netip.Prefix{netip.MustParsePrefix("::ffff:10.0.0.5/128")}}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := guardSources(context.Background(), tc.opts)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("guardSources = %v, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("guardSources = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}

// TestNextGuardCheck: a stack image reloaded since the guard was set (a new ID, so
// a node label the guard's constraint does not name) sets the guard again and waits
// for it, even within a fresh finding; an unchanged image keeps the old rules.
func TestNextGuardCheck(t *testing.T) {
	now := time.Date(2026, 12, 1, 18, 0, 0, 0, time.UTC)
	fresh, stale := now.Add(-guardRecheck/2), now.Add(-2*guardRecheck)
	for _, tc := range []struct {
		name  string
		state guardState
		image string
		want  guardCheck
	}{
		{"the image changed within a fresh finding", guardState{image: "sha256:old", seen: fresh}, "sha256:new", guardCheck{ensure: true, wait: guardWait}},
		{"the image changed after a stale finding", guardState{image: "sha256:old", seen: stale}, "sha256:new", guardCheck{ensure: true, wait: guardWait}},
		{"the image changed after the guard failed to come: look once", guardState{image: "sha256:old", seen: stale, missing: true}, "sha256:new", guardCheck{ensure: true, wait: pollInterval}},
		{"never looked", guardState{image: "sha256:old"}, "sha256:old", guardCheck{wait: guardWait}},
		{"a fresh finding holds", guardState{image: "sha256:old", seen: fresh}, "sha256:old", guardCheck{}},
		{"a stale finding: wait again", guardState{image: "sha256:old", seen: stale}, "sha256:old", guardCheck{wait: guardWait}},
		{"after the guard failed to come: look once", guardState{image: "sha256:old", seen: stale, missing: true}, "sha256:old", guardCheck{wait: pollInterval}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextGuardCheck(now, tc.state, tc.image); got != tc.want {
				t.Fatalf("nextGuardCheck = %+v, want %+v", got, tc.want)
			}
		})
	}
}
