package notify_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/secret/secrettest"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// ageKeygen is secrettest.Keygen.
var ageKeygen = secrettest.Keygen

// ageEncrypt seals value for where with Debian's age CLI, in the envelope `manifold
// secret encrypt` writes: what a user without manifold's CLI could do.
func ageEncrypt(t *testing.T, where secret.Binding, value, recipient string) string {
	t.Helper()
	cmd := exec.Command("age", "-r", recipient)
	cmd.Stdin = strings.NewReader("manifold-secret/v1\n" + where.App + "\n" + where.Env + "\n" + where.Name + "\n" + value)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("age -r: %v\n%s", err, stderr.String())
	}
	return secret.Prefix + base64.RawURLEncoding.EncodeToString(out.Bytes())
}

func seal(t *testing.T, where secret.Binding, value, recipient string) string {
	t.Helper()
	sealed, err := secret.Seal(where, value, []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// TestSealedCredentials: receivers whose HMAC key and forge token are sealed in the
// config repo deliver, signed and authorised, with the daemon's age identity (keys
// from Debian's age-keygen, one value sealed by Debian's age); those whose value
// does not open (moved from another receiver or environment, sealed to another
// key, tampered) are named with their file:line:col and not used, while the others
// deliver; no plaintext reaches the log, the queue file or an error.
func TestSealedCredentials(t *testing.T) {
	t.Parallel()
	const (
		hmacKey   = "hmac-key-sealed-in-the-repo-7f3a"
		teamKey   = "team-key-sealed-for-production-9c1d"
		forgeTok  = "gitea-token-sealed-in-the-repo-52be"
		otherKey  = "sealed-to-a-stranger-0b7e"
		commitHex = "1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f"
	)
	identity, recipient := ageKeygen(t)
	_, strangerRecipient := ageKeygen(t)
	keyring, err := secret.LoadKeyring(identity)
	if err != nil {
		t.Fatal(err)
	}

	ops := newReceiver(t) // checks the HMAC: 401 to a wrong signature
	ops.secret = []byte(hmacKey)
	team := newReceiver(t)
	team.secret = []byte(teamKey)
	forge := newFakeForge(t, "token ", "/api/v1", forgeTok) // 401 to a wrong token
	unused := newReceiver(t)                                // the receivers not used all point here

	at := func(file string, line int) spec.Pos { return spec.Pos{File: file, Line: line, Col: 12} }
	tampered := []byte(seal(t, secret.NotifyBinding("", "", "tampered", "secret"), hmacKey, recipient))
	tampered[len(tampered)-8] ^= 1
	webhook := func(name, sealed string, pos spec.Pos) spec.Notify {
		return spec.Notify{Name: name, Type: spec.NotifyWebhook, URL: unused.srv.URL, Severity: "info",
			Secret: &spec.Secret{Sealed: sealed, Pos: pos}}
	}
	opsNotify := webhook("ops", seal(t, secret.NotifyBinding("", "", "ops", "secret"), hmacKey, recipient), at("manifold.hcl", 4))
	opsNotify.URL = ops.srv.URL
	desired := &spec.Desired{
		Environments: []string{"production", "staging"},
		Platform: spec.Platform{Notify: []spec.Notify{
			{Name: "commits", Type: spec.NotifyGiteaStatus, API: forge.srv.URL + "/api/v1", Repo: "acme/config", Severity: "info",
				Token: &spec.Secret{Sealed: ageEncrypt(t, secret.NotifyBinding("", "", "commits", "token"), forgeTok, recipient), Pos: at("manifold.hcl", 10)}},
			// ops' sealed key pasted into another receiver: sealed for another place.
			webhook("copied", opsNotify.Secret.Sealed, at("manifold.hcl", 16)),
			opsNotify,
			webhook("stranger", seal(t, secret.NotifyBinding("", "", "stranger", "secret"), otherKey, strangerRecipient), at("manifold.hcl", 22)),
			webhook("tampered", string(tampered), at("manifold.hcl", 28)),
		}},
		Apps: []spec.App{
			{Name: "hello", Env: "production", Notify: []spec.Notify{{Name: "team", Type: spec.NotifyWebhook, URL: team.srv.URL, Severity: "info",
				Secret: &spec.Secret{Sealed: seal(t, secret.NotifyBinding("hello", "production", "team", "secret"), teamKey, recipient),
					Pos: at("environments/production.hcl", 5)}}}},
			// Staging's block holds production's value: sealed for another environment.
			{Name: "hello", Env: "staging", Notify: []spec.Notify{webhook("team",
				seal(t, secret.NotifyBinding("hello", "production", "team", "secret"), teamKey, recipient), at("environments/staging.hcl", 5))}},
		},
	}

	var logs lockedBuffer
	opts := fastOptions(t, &logs)
	opts.Secrets = keyring
	n, err := notify.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	cfgErr := n.Configure(desired)
	wantErrs := []string{
		`manifold.hcl:16:12: notify "copied": secret does not open: sealed for another place: encrypted for manifold.hcl/notify/ops/secret, found at manifold.hcl/notify/copied/secret`,
		`manifold.hcl:22:12: notify "stranger": secret does not open: not encrypted to this daemon's age identity`,
		`manifold.hcl:28:12: notify "tampered": secret does not open: not a valid sealed secret`,
		`environments/staging.hcl:5:12: notify "team" of hello (staging): secret does not open: sealed for another place: encrypted for hello/production/notify/team/secret, found at hello/staging/notify/team/secret`,
	}
	if cfgErr == nil {
		t.Fatal("Configure: no error for the receivers whose key does not open")
	}
	for _, want := range wantErrs {
		if !strings.Contains(cfgErr.Error(), want) {
			t.Errorf("Configure's error does not say\n  %s\nit says\n  %s", want, strings.ReplaceAll(cfgErr.Error(), "\n", "\n  "))
		}
		if receiver, _, _ := strings.Cut(strings.SplitN(want, ": ", 3)[1], " of "); !strings.Contains(logs.String(), strings.ReplaceAll(receiver, `"`, `\"`)) {
			t.Errorf("the log does not name %s", receiver)
		}
	}
	if got := strings.Count(cfgErr.Error(), "\n") + 1; got != len(wantErrs) {
		t.Errorf("Configure's error has %d lines, want %d:\n%s", got, len(wantErrs), cfgErr)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = n.Run(ctx) }()
	n.Notify(ctx,
		notify.DeployStartedEvent("hello", "production", commitHex),
		notify.DeploySucceededEvent("hello", "production", commitHex, 3),
		notify.DeployStartedEvent("hello", "staging", commitHex))
	waitFor(t, "the signed webhooks and the statuses", func() bool {
		return len(ops.deliveries()) == 3 && len(team.deliveries()) == 2 && len(forge.got()) == 3
	})
	for name, rcv := range map[string]*receiver{"ops": ops, "team": team} {
		rcv.mu.Lock()
		if rcv.badSig > 0 {
			t.Errorf("%s: %d requests with a wrong signature", name, rcv.badSig)
		}
		rcv.mu.Unlock()
		for _, d := range rcv.deliveries() {
			if !strings.HasPrefix(d.Header.Get(notify.HeaderSignature), "sha256=") {
				t.Errorf("%s: delivery %s is not signed", name, d.ID)
			}
		}
	}
	for _, s := range forge.got() {
		if s.Auth != "token "+forgeTok {
			t.Errorf("status %s %s sent with Authorization %q", s.State, s.Context, s.Auth)
		}
	}
	if got := summary(team.deliveries()); !slices.Equal(got, []string{"deploy.started", "deploy.succeeded"}) {
		t.Errorf("team (production) got %q", got)
	}

	// The receivers not used: nothing queued for them, so nothing sent. Another
	// event through the good ones first, so a stray delivery would have arrived.
	n.Notify(ctx, notify.RollbackEvent("hello", "production", 2, 4, "ops@example.com"))
	waitFor(t, "the rollback", func() bool { return len(ops.deliveries()) == 4 })
	if got := len(unused.deliveries()); got != 0 {
		t.Errorf("receivers whose key does not open were sent %d requests", got)
	}

	cancel()
	<-done
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	queue, err := os.ReadFile(opts.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{hmacKey, teamKey, forgeTok, otherKey} {
		if strings.Contains(logs.String(), plain) {
			t.Errorf("the log holds the plaintext %q", plain)
		}
		if strings.Contains(cfgErr.Error(), plain) {
			t.Errorf("Configure's error holds the plaintext %q", plain)
		}
		if bytes.Contains(queue, []byte(plain)) {
			t.Errorf("the queue file holds the plaintext %q", plain)
		}
	}
	if !bytes.Contains(queue, []byte(opsNotify.Secret.Sealed)) {
		t.Errorf("the queue file does not keep the sealed key (a restarted daemon needs it)")
	}
}

// TestSealedCredentialWithoutIdentity: a daemon started without --age-identity
// uses no receiver with a sealed value, says so, and delivers to the others.
func TestSealedCredentialWithoutIdentity(t *testing.T) {
	t.Parallel()
	_, recipient := ageKeygen(t)
	plain := newReceiver(t)
	sealedOne := newReceiver(t)
	var logs lockedBuffer
	n := start(t, fastOptions(t, &logs), nil)
	err := n.Configure(platform(
		spec.Notify{Name: "plain", Type: spec.NotifyWebhook, URL: plain.srv.URL, Severity: "info"},
		spec.Notify{Name: "sealed", Type: spec.NotifyWebhook, URL: sealedOne.srv.URL, Severity: "info",
			Secret: &spec.Secret{Sealed: seal(t, secret.NotifyBinding("", "", "sealed", "secret"), "k", recipient), Pos: spec.Pos{File: "manifold.hcl", Line: 3, Col: 12}}},
	))
	if !errors.Is(err, secret.ErrNoIdentity) || !strings.HasPrefix(err.Error(), `manifold.hcl:3:12: notify "sealed": secret does not open: no age identity`) {
		t.Fatalf("Configure = %v", err)
	}
	n.Notify(context.Background(), deployEvents(2)...)
	waitFor(t, "the plain receiver's deliveries", func() bool { return len(plain.deliveries()) == 2 })
	if got := len(sealedOne.deliveries()); got != 0 {
		t.Errorf("the receiver whose key does not open got %d deliveries", got)
	}
}

// TestUnusableReceiverKeepsItsQueue: a receiver whose sealed key stops opening (a
// commit pastes a value sealed for elsewhere) keeps what it had queued, and delivers
// it, signed, once a commit makes its key open again.
func TestUnusableReceiverKeepsItsQueue(t *testing.T) {
	t.Parallel()
	file, recipient, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	opts := fastOptions(t, nil)
	if opts.Secrets, err = secret.ParseKeyring(strings.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	rcv.secret = []byte("the-key")
	rcv.setFailing(true)
	withKey := func(where secret.Binding) *spec.Desired {
		return platform(spec.Notify{Name: "ops", Type: spec.NotifyWebhook, URL: rcv.srv.URL, Severity: "info",
			Secret: &spec.Secret{Sealed: seal(t, where, "the-key", recipient), Pos: spec.Pos{File: "manifold.hcl", Line: 5, Col: 12}}})
	}
	n := start(t, opts, withKey(secret.NotifyBinding("", "", "ops", "secret")))
	n.Notify(context.Background(), deployEvents(3)...)
	waitFor(t, "a refused attempt", func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.refused > 0
	})
	if err := n.Configure(withKey(secret.NotifyBinding("", "", "other", "secret"))); !errors.Is(err, secret.ErrMoved) {
		t.Fatalf("Configure with a key sealed for another receiver = %v", err)
	}
	rcv.setFailing(false)
	n.Notify(context.Background(), notify.RollbackEvent("hello", "staging", 1, 4, "ops@example.com")) // not queued for ops
	if err := n.Configure(withKey(secret.NotifyBinding("", "", "ops", "secret"))); err != nil {
		t.Fatalf("Configure with ops' key again = %v", err)
	}
	waitFor(t, "the 3 queued events", func() bool { return len(unique(rcv.deliveries())) >= 3 })
	if got := summary(unique(rcv.deliveries())); !slices.Equal(got, []string{"deploy.succeeded", "deploy.succeeded", "deploy.succeeded"}) {
		t.Errorf("ops got %q, want the 3 deploys queued before its key stopped opening (and not the rollback of meanwhile)", got)
	}
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	if rcv.badSig > 0 {
		t.Errorf("%d deliveries with a wrong signature", rcv.badSig)
	}
}
