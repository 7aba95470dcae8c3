package swarm

import (
	"net"
	"strings"
	"testing"
)

// TestSlugBaseURL checks the URL the nodes are given: the listener's own address, or
// for every interface the local address of the route to the manager (loopback here).
func TestSlugBaseURL(t *testing.T) {
	for _, tc := range []struct {
		name, listen, manager, want, wantErr string
	}{
		{"an address", "10.213.7.1:7070", "10.213.7.11", "http://10.213.7.1:7070", ""},
		{"every interface, ipv4", "0.0.0.0:7070", "127.0.0.1", "http://127.0.0.1:7070", ""},
		{"every interface, ipv6", "[::]:7070", "127.0.0.1", "http://127.0.0.1:7070", ""},
		{"every interface, no manager address", "[::]:7070", "", "", "MANIFOLD_SWARM_SLUG_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, err := net.ResolveTCPAddr("tcp", tc.listen)
			if err != nil {
				t.Fatal(err)
			}
			got, err := slugBaseURL(addr, tc.manager)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("slugBaseURL(%s, %q) = %q, %v; want an error naming %s", tc.listen, tc.manager, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("slugBaseURL(%s, %q) = %q, %v; want %q", tc.listen, tc.manager, got, err, tc.want)
			}
		})
	}
}
