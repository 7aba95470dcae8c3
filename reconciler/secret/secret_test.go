package secret_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/secret/secrettest"

	"github.com/manifold-paas/manifold/reconciler/secret"
)

// ageKeygen is secrettest.Keygen.
var ageKeygen = secrettest.Keygen

func generate(t *testing.T) (*secret.Keyring, string) {
	t.Helper()
	file, recipient, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k, err := secret.ParseKeyring(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	return k, recipient
}

func TestOpen(t *testing.T) {
	t.Parallel()
	prod, prodRecipient := generate(t)
	staging, stagingRecipient := generate(t)
	other, otherRecipient := generate(t)
	here := secret.Binding{App: "hello", Env: "production", Name: "DATABASE_URL"}
	sealed, err := secret.Seal(here, "postgres://u:p@db/x", []string{prodRecipient, otherRecipient})
	if err != nil {
		t.Fatal(err)
	}
	stagingSealed, err := secret.Seal(secret.Binding{App: "hello", Env: "staging", Name: "DATABASE_URL"}, "s", []string{stagingRecipient})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, secret.Prefix))
	tampered := append([]byte(nil), raw...)
	tampered[len(tampered)-5] ^= 1
	tests := []struct {
		name    string
		keyring *secret.Keyring
		where   secret.Binding
		sealed  string
		want    string
		wantErr error
		inErr   string
	}{
		{name: "opens", keyring: prod, where: here, sealed: sealed, want: "postgres://u:p@db/x"},
		{name: "second recipient opens", keyring: other, where: here, sealed: sealed, want: "postgres://u:p@db/x"},
		{name: "staging key, production value", keyring: staging, where: here, sealed: sealed, wantErr: secret.ErrWrongIdentity},
		{name: "no identity", keyring: nil, where: here, sealed: sealed, wantErr: secret.ErrNoIdentity},
		{name: "moved to another app", keyring: prod, where: secret.Binding{App: "api", Env: "production", Name: "DATABASE_URL"}, sealed: sealed,
			wantErr: secret.ErrMoved, inErr: "encrypted for hello/production/DATABASE_URL, found at api/production/DATABASE_URL"},
		{name: "moved to another name", keyring: prod, where: secret.Binding{App: "hello", Env: "production", Name: "OTHER"}, sealed: sealed, wantErr: secret.ErrMoved},
		{name: "moved to another env", keyring: staging, where: here, sealed: stagingSealed, wantErr: secret.ErrMoved, inErr: "encrypted for hello/staging/DATABASE_URL"},
		{name: "tampered", keyring: prod, where: here, sealed: secret.Prefix + base64.RawURLEncoding.EncodeToString(tampered), wantErr: secret.ErrCorrupt},
		{name: "truncated", keyring: prod, where: here, sealed: sealed[:len(sealed)-20], wantErr: secret.ErrCorrupt},
		{name: "plaintext pasted", keyring: prod, where: here, sealed: "postgres://u:p@db/x", wantErr: secret.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.keyring.Open(tt.where, tt.sealed)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Open = %q, %v; want %v", got, err, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.inErr) {
					t.Errorf("error %q does not say %q", err, tt.inErr)
				}
				if strings.Contains(err.Error(), "postgres") {
					t.Errorf("error %q holds the plaintext", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Open = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestDebianAge: an identity from Debian's age-keygen opens what Seal made for its
// public key, and Debian's age decrypts the envelope Seal wrote (the format is plain age).
func TestDebianAge(t *testing.T) {
	t.Parallel()
	keyPath, recipient := ageKeygen(t)
	here := secret.Binding{App: "hello", Env: "production", Name: "TOKEN"}
	sealed, err := secret.Seal(here, "canary-value", []string{recipient})
	if err != nil {
		t.Fatal(err)
	}
	keyring, err := secret.LoadKeyring(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keyring.Open(here, sealed); err != nil || got != "canary-value" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, secret.Prefix))
	cmd := exec.Command("age", "-d", "-i", keyPath)
	cmd.Stdin = bytes.NewReader(raw)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("age -d: %v\n%s", err, out)
	}
	if !strings.HasSuffix(string(out), "\nhello\nproduction\nTOKEN\ncanary-value") {
		t.Errorf("age -d printed %q", out)
	}

	// A file others can read is refused, as ssh refuses such private keys.
	if err := os.Chmod(keyPath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := secret.LoadKeyring(keyPath); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadKeyring of a 0644 file: %v", err)
	}
}

func TestSealNeedsRecipients(t *testing.T) {
	t.Parallel()
	here := secret.Binding{App: "a", Env: "e", Name: "N"}
	if _, err := secret.Seal(here, "v", nil); err == nil || !strings.Contains(err.Error(), "no recipients") {
		t.Errorf("Seal without recipients: %v", err)
	}
	if _, err := secret.Seal(here, "v", []string{"age1nope"}); err == nil || !strings.Contains(err.Error(), "invalid recipient") {
		t.Errorf("Seal to a bad recipient: %v", err)
	}
}

// TestNotifyBinding: a receiver's sealed key opens only for that receiver, attribute,
// app and environment (or manifold.hcl), never as a config var, and a config var's
// value never opens as a receiver's key.
func TestNotifyBinding(t *testing.T) {
	t.Parallel()
	k, recipient := generate(t)
	seal := func(where secret.Binding) string {
		t.Helper()
		sealed, err := secret.Seal(where, "hmac-key-value", []string{recipient})
		if err != nil {
			t.Fatal(err)
		}
		return sealed
	}
	team := secret.NotifyBinding("hello", "production", "team", "secret")
	ops := secret.NotifyBinding("", "", "ops", "secret")
	tests := []struct {
		name         string
		sealedFor    secret.Binding
		openedAt     secret.Binding
		wantErr      error
		inErr        string
		wantOpenedAt string
	}{
		{name: "app receiver", sealedFor: team, openedAt: team},
		{name: "manifold.hcl receiver", sealedFor: ops, openedAt: ops},
		{name: "another environment", sealedFor: team, openedAt: secret.NotifyBinding("hello", "staging", "team", "secret"), wantErr: secret.ErrMoved,
			inErr: "encrypted for hello/production/notify/team/secret, found at hello/staging/notify/team/secret (run `manifold secret encrypt -e staging -a hello --notify team secret` for this place)"},
		{name: "another receiver", sealedFor: team, openedAt: secret.NotifyBinding("hello", "production", "ops", "secret"), wantErr: secret.ErrMoved},
		{name: "secret as token", sealedFor: team, openedAt: secret.NotifyBinding("hello", "production", "team", "token"), wantErr: secret.ErrMoved},
		{name: "app's to manifold.hcl", sealedFor: secret.NotifyBinding("hello", "production", "ops", "secret"), openedAt: ops, wantErr: secret.ErrMoved,
			inErr: "found at manifold.hcl/notify/ops/secret (run `manifold secret encrypt --notify ops secret` for this place)"},
		{name: "config var as receiver key", sealedFor: secret.Binding{App: "hello", Env: "production", Name: "TEAM"}, openedAt: team, wantErr: secret.ErrMoved},
		{name: "receiver key as config var", sealedFor: team, openedAt: secret.Binding{App: "hello", Env: "production", Name: "TEAM"}, wantErr: secret.ErrMoved},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := k.Open(tt.openedAt, seal(tt.sealedFor))
			if tt.wantErr == nil {
				if err != nil || got != "hmac-key-value" {
					t.Fatalf("Open = %q, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.inErr) {
				t.Fatalf("Open = %q, %v; want %v saying %q", got, err, tt.wantErr, tt.inErr)
			}
			if strings.Contains(err.Error(), "hmac-key-value") {
				t.Errorf("error %q holds the plaintext", err)
			}
		})
	}
}
