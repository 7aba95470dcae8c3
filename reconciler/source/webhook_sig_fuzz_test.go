package source

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

// FuzzWebhookSignature feeds arbitrary signature headers to the parser and the check:
// nothing panics, a parsed HMAC is always 32 bytes, and a request is authentic only
// when its first signature header is the body's true HMAC or the GitLab token.
func FuzzWebhookSignature(f *testing.F) {
	const secret = "s"
	body := []byte(`{"ref":"refs/heads/main"}`)
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	good := hex.EncodeToString(mac.Sum(nil))
	f.Add("sha256="+good, "", "", body)
	f.Add("", good, "", body)
	f.Add("", "", secret, body)
	f.Add("sha256="+strings.ToUpper(good), "", "", body)
	f.Add("sha256=", "zz", "s\x00", []byte{})
	f.Add("sha1="+good, good, secret, body)
	f.Fuzz(func(t *testing.T, hub, gitea, gitlab string, body []byte) {
		h := http.Header{}
		for k, v := range map[string]string{"X-Hub-Signature-256": hub, "X-Gitea-Signature": gitea, "X-Gitlab-Token": gitlab} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		sig, err := parseSignature(h)
		if err == nil && sig.kind == sigHMAC && len(sig.mac) != sha256.Size {
			t.Fatalf("parsed a %d-byte HMAC", len(sig.mac))
		}
		_, ok := authenticate([]byte(secret), h, body)
		mac := hmac.New(sha256.New, []byte(secret))
		mac.Write(body)
		want := hex.EncodeToString(mac.Sum(nil))
		var valid bool
		switch {
		case hub != "":
			valid = strings.EqualFold(hub, "sha256="+want) && strings.HasPrefix(hub, "sha256=")
		case gitea != "":
			valid = strings.EqualFold(gitea, want)
		case gitlab != "":
			valid = gitlab == secret
		}
		if ok != valid {
			t.Fatalf("authentic = %v, want %v (hub %q gitea %q gitlab %q)", ok, valid, hub, gitea, gitlab)
		}
	})
}
