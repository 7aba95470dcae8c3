package swarm

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSampleMACMatchesTheBootScript: the MAC the boot script computes with busybox
// (the stack's shell tools) is the one validSample accepts, and only for its values.
func TestSampleMACMatchesTheBootScript(t *testing.T) {
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatalf("busybox (the stack's tools) not found: %v", err)
	}
	const nonce = "00112233445566778899aabbccddeeff"
	out, err := exec.Command(busybox, "sh", "-c",
		`mf_nonce=`+nonce+`; mf_seq=3; mf_used=25165824; printf '%s %s %s' "$mf_nonce" "$mf_seq" "$mf_used" | sha256sum | cut -c1-32`).Output()
	if err != nil {
		t.Fatal(err)
	}
	mac := strings.TrimSpace(string(out))
	for _, tc := range []struct {
		nonce string
		seq   int
		used  int64
		want  bool
	}{
		{nonce, 3, 25165824, true},
		{nonce, 4, 25165824, false},
		{nonce, 3, 25165825, false},
		{"ffeeddccbbaa99887766554433221100", 3, 25165824, false},
		{"", 3, 25165824, false},
	} {
		if got := validSample(tc.nonce, tc.seq, tc.used, mac); got != tc.want {
			t.Errorf("validSample(%q, %d, %d, %s) = %v, want %v", tc.nonce, tc.seq, tc.used, mac, got, tc.want)
		}
	}
	if !strings.Contains(memorySampler, `printf '%s %s %s' "$mf_nonce" "$mf_seq" "$mf_used" | sha256sum | cut -c1-32`) {
		t.Error("the boot script no longer computes the MAC as this test does")
	}
}
