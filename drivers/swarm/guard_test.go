package swarm_test

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/drivers/swarm"
)

func TestParseRouterSources(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []netip.Prefix
		noGuard bool
		err     string
	}{
		{in: "", want: nil},
		{in: "none", noGuard: true},
		{in: "10.0.0.5", want: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32")}},
		{in: "10.0.0.5, 192.168.1.0/24", want: []netip.Prefix{netip.MustParsePrefix("10.0.0.5/32"), netip.MustParsePrefix("192.168.1.0/24")}},
		{in: "fd00::1,fd01::/64", want: []netip.Prefix{netip.MustParsePrefix("fd00::1/128"), netip.MustParsePrefix("fd01::/64")}},
		{in: "10.0.0.5,", err: "router sources"},
		{in: "fe80::1%eth0", err: "zone"},
		{in: "router.example", err: "router sources"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, noGuard, err := swarm.ParseRouterSources(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseRouterSources(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || noGuard != tc.noGuard || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseRouterSources(%q) = %v, %v, %v; want %v, %v", tc.in, got, noGuard, err, tc.want, tc.noGuard)
			}
		})
	}
}

func TestGuardChainFitsIPTables(t *testing.T) {
	for _, instance := range []string{"default", "t1a2b3c", strings.Repeat("long", 10)} {
		chain := swarm.GuardChain(instance)
		if len(chain) > 28 || !strings.HasPrefix(chain, "MANIFOLD-") {
			t.Errorf("GuardChain(%q) = %q: want MANIFOLD-… of at most 28 characters", instance, chain)
		}
	}
	if a, b := swarm.GuardChain(strings.Repeat("a", 40)), swarm.GuardChain(strings.Repeat("a", 39)+"b"); a == b {
		t.Errorf("two long instances share the chain %s", a)
	}
}
