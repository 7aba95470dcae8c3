package swarm

import (
	"context"
	"net/netip"
	"slices"
	"testing"
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
