package notify

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"

	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// credentials.go finds a receiver's credential: a webhook's HMAC key or a forge's
// token. It is a file on the daemon's host (read at each delivery), or a value
// sealed in the config repo (opened in memory at each delivery with the daemon's
// age identity). Either way it lives in memory only while a request is made: never
// in a log line, the queue, an API answer or an error.

// isForge tells the commit status types, which take a token.
func isForge(typ string) bool {
	return typ == spec.NotifyGitHubStatus || typ == spec.NotifyGiteaStatus
}

// credentialOf is where a receiver's credential is: sealed or a file (at most one
// is set; the spec checks it), and the attribute's name.
func credentialOf(nb spec.Notify) (sealed *spec.Secret, file, attr string) {
	if isForge(nb.Type) {
		return nb.Token, nb.TokenFile, "token"
	}
	if nb.Type == spec.NotifyWebhook {
		return nb.Secret, nb.SecretFile, "secret"
	}
	return nil, "", ""
}

// credential returns a receiver's key or token, nil when it has none. A sealed one
// opened when Configure checked it: a failure now is retried like a failed request
// (Configure marks a receiver whose key does not open, and its worker then waits).
func (n *Notifier) credential(r receiver) ([]byte, error) {
	sealed, file, attr := credentialOf(r.Notify)
	switch {
	case sealed != nil:
		return n.open(r, sealed, attr)
	case file != "":
		return readSecret(file)
	}
	return nil, nil
}

// open opens a receiver's sealed key or token. The error names the receiver and
// where the value is written, never the value.
func (n *Notifier) open(r receiver, sealed *spec.Secret, attr string) ([]byte, error) {
	// Bound to the environment whose file holds it (spec.Secret.Env; empty for
	// manifold.hcl's), which is the receiver's.
	value, err := n.opts.Secrets.Open(secret.NotifyBinding(r.App, cmp.Or(sealed.Env, r.Env), r.Notify.Name, attr), sealed.Sealed)
	if err == nil && value == "" {
		err = errors.New("it is empty")
	}
	if err != nil {
		return nil, fmt.Errorf("%s:%d:%d: %s: %s does not open: %w", sealed.Pos.File, sealed.Pos.Line, sealed.Pos.Col, r.describe(), attr, err)
	}
	return []byte(value), nil
}

// checkCredentials opens every receiver's sealed value, to tell at once which
// receivers cannot be used and why; the plaintext is dropped.
func (n *Notifier) checkCredentials(receivers map[string]receiver) map[string]error {
	unusable := map[string]error{}
	for id, r := range receivers {
		if sealed, _, attr := credentialOf(r.Notify); sealed != nil {
			if _, err := n.open(r, sealed, attr); err != nil {
				unusable[id] = err
			}
		}
	}
	return unusable
}

// describe names a receiver as a user wrote it: `notify "ops"`, or `notify "team"
// of hello (production)`.
func (r receiver) describe() string {
	if r.App == "" {
		return fmt.Sprintf("notify %q", r.Notify.Name)
	}
	return fmt.Sprintf("notify %q of %s (%s)", r.Notify.Name, r.App, r.Env)
}

// readSecret reads a key or token file of the daemon's host, cut of trailing
// whitespace. The error names the file, never its content.
func readSecret(file string) ([]byte, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, errors.Unwrap(err))
	}
	key := bytes.TrimRight(data, " \t\r\n")
	if len(key) == 0 {
		return nil, fmt.Errorf("%s is empty", file)
	}
	return key, nil
}
