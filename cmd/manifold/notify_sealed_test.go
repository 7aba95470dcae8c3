package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/secret/secrettest"

	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/secret"
)

// signedReceiver is a webhook receiver on 127.0.0.1 that accepts a request only when
// its X-Manifold-Signature-256 is the HMAC of the body with key (else 401), or, with
// a token, a commit status whose Authorization is "token <token>" (Gitea's form).
type signedReceiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	accepted []string // event types, or commit status states
	refused  int
}

func newSignedReceiver(t *testing.T, key, token string) *signedReceiver {
	t.Helper()
	h := &signedReceiver{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		var ok bool
		var what string
		if token != "" {
			var status struct{ State string }
			ok = r.Header.Get("Authorization") == "token "+token && json.Unmarshal(body, &status) == nil
			what = status.State
		} else {
			mac := hmac.New(sha256.New, []byte(key))
			mac.Write(body)
			ok = hmac.Equal([]byte(r.Header.Get(notify.HeaderSignature)), []byte("sha256="+hex.EncodeToString(mac.Sum(nil))))
			what = r.Header.Get(notify.HeaderEvent)
		}
		if !ok {
			h.refused++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.accepted = append(h.accepted, what)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *signedReceiver) got() (accepted []string, refused int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.accepted...), h.refused
}

func (h *signedReceiver) has(what string) error {
	accepted, refused := h.got()
	for _, a := range accepted {
		if a == what {
			return nil
		}
	}
	return fmt.Errorf("accepted %q, refused %d", accepted, refused)
}

// notifySealedManifold is manifold.hcl with three receivers whose credentials are
// sealed in the repo: ops (its HMAC key), copied (ops' sealed key pasted: it does
// not open there) and commits (a Gitea token).
const notifySealedManifold = `recipients = ["%RECIPIENT%"]
notify "ops" {
  type   = "webhook"
  url    = "%OPS%"
  secret = "%OPS_SECRET%"
}
notify "copied" {
  type   = "webhook"
  url    = "%COPIED%"
  secret = "%COPIED_SECRET%"
}
notify "commits" {
  type  = "gitea-status"
  api   = "%FORGE%/api/v1"
  repo  = "acme/config"
  token = "%TOKEN%"
}
`

// TestNotifySealedEndToEnd runs `manifold up` with receivers whose HMAC keys and
// forge token are sealed in the config repo by `manifold secret encrypt --notify`
// (the daemon's identity from Debian's age-keygen): the signed webhooks of
// manifold.hcl and of an app's production block, and the Gitea status, arrive and
// check out; a receiver holding another's sealed key is named with its
// file:line:col in `manifold status` and gets nothing. No plaintext is in the
// daemon's log, its state directory, the API's status or any CLI output, plans
// between two commits (which reseal a key) included.
func TestNotifySealedEndToEnd(t *testing.T) {
	const opsKey, teamKey, token = "ops-hmac-plaintext-4d1c", "team-hmac-plaintext-8e2f", "gitea-token-plaintext-a7b3"
	ops, team := newSignedReceiver(t, opsKey, ""), newSignedReceiver(t, teamKey, "")
	copied, forge := newSignedReceiver(t, opsKey, ""), newSignedReceiver(t, "", token)

	identity, recipient := secrettest.Keygen(t)

	repo := t.TempDir()
	manifold := strings.NewReplacer("%RECIPIENT%", recipient, "%OPS%", ops.srv.URL, "%COPIED%", copied.srv.URL, "%FORGE%", forge.srv.URL)
	// Receivers first, without their sealed values: encrypt checks they exist.
	unsealed := strings.NewReplacer(`secret = "%OPS_SECRET%"`, "", `secret = "%COPIED_SECRET%"`, "", `token = "%TOKEN%"`, `token_file = "/dev/null"`)
	writeFile(t, repo, "manifold.hcl", unsealed.Replace(manifold.Replace(notifySealedManifold)))
	writeFile(t, repo, "src/w/Procfile", "worker: sleep 600\n")
	writeFile(t, repo, "apps/w.hcl", `app "w" {
  source { path = "../src/w" }
  buildpacks = ["procfile"]
  process "worker" { count = 1 }
  notify "team" {
    type = "webhook"
    url  = "`+team.srv.URL+`"
  }
}
`)
	envFile := func(teamSealed string) string {
		return `environment "production" {
  recipients = ["` + recipient + `"]
  app "w" {
    notify "team" { secret = "` + teamSealed + `" }
  }
}
`
	}
	writeFile(t, repo, "environments/production.hcl", strings.Replace(envFile(""), `notify "team" { secret = "" }`, "", 1))
	seal := func(value string, args ...string) string {
		t.Helper()
		code, out, errOut := runCLIWithStdin(t, strings.NewReader(value+"\n"), append([]string{"secret", "encrypt", "--repo", repo}, args...)...)
		if code != 0 || !strings.HasPrefix(out, secret.Prefix) || strings.Contains(out+errOut, value) {
			t.Fatalf("secret encrypt %s: exit %d, %q %q", args, code, out, errOut)
		}
		return strings.TrimSpace(out)
	}
	opsSealed := seal(opsKey, "--notify", "ops", "secret")
	tokenSealed := seal(token, "--notify", "commits", "token")
	teamSealed := seal(teamKey, "-e", "production", "-a", "w", "--notify", "team", "secret")
	writeManifold := func(opsSealed string) {
		writeFile(t, repo, "manifold.hcl", strings.NewReplacer("%OPS_SECRET%", opsSealed, "%COPIED_SECRET%", opsSealed, "%TOKEN%", tokenSealed).
			Replace(manifold.Replace(notifySealedManifold)))
	}
	writeManifold(opsSealed)
	writeFile(t, repo, "environments/production.hcl", envFile(teamSealed))
	if code, out, errOut := runCLI(t, "validate", repo); code != 0 {
		t.Fatalf("validate: exit %d, %s%s", code, out, errOut)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "w, and receivers with sealed keys")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr := freeAddr(t)
	d := startDaemonArgs(t, state, routerAddr, "up", "--repo", "file://"+repo, "--state", state, "--router", routerAddr,
		"--interval", "300ms", "--boot-timeout", "20s", "--age-identity", identity, "-v")

	for name, rcv := range map[string]*signedReceiver{"ops": ops, "team (w, production)": team} {
		eventually(t, 90*time.Second, name+" gets a signed deploy.succeeded", func() error { return rcv.has(string(notify.DeploySucceeded)) })
	}
	eventually(t, 30*time.Second, "the Gitea status, with its token", func() error { return forge.has("success") })
	const wantStatus = `manifold.hcl:10:12: notify "copied": secret does not open: sealed for another place: encrypted for manifold.hcl/notify/ops/secret, found at manifold.hcl/notify/copied/secret`
	eventually(t, 30*time.Second, "manifold status names the receiver not used", func() error {
		status, err := d.api.Status(context.Background())
		if err == nil && !strings.Contains(status.NotifyError, wantStatus) {
			err = fmt.Errorf("notify_error %q", status.NotifyError)
		}
		return err
	})

	// A second commit reseals ops' key (same value): no release, and plans between
	// the commits show neither the sealed text nor the value.
	resealed := seal(opsKey, "--notify", "ops", "secret")
	writeManifold(resealed)
	git(t, repo, "commit", "-q", "-am", "reseal ops' key")
	eventually(t, 30*time.Second, "ops still signed after the reseal", func() error {
		n := 0
		accepted, _ := ops.got()
		for _, a := range accepted {
			if a == string(notify.DeploySucceeded) {
				n++
			}
		}
		if n == 0 {
			return errors.New("no deploy.succeeded")
		}
		return nil
	})

	outputs := map[string]string{}
	for _, args := range [][]string{
		{"--api", d.apiAddr, "status"}, {"--api", d.apiAddr, "releases", "-a", "w", "-e", "production", "--json"},
		{"--api", d.apiAddr, "plan", "--live"}, {"--api", d.apiAddr, "plan", "--live", "--format", "json"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json"},
	} {
		_, out, errOut := runCLI(t, args...)
		outputs[strings.Join(args, " ")] = out + errOut
	}
	status, err := d.api.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	statusJSON, err := json.Marshal(status)
	if err != nil {
		t.Fatal(err)
	}
	outputs["API status"] = string(statusJSON)
	if !strings.Contains(outputs["--api "+d.apiAddr+" status"], wantStatus) {
		t.Errorf("`manifold status` does not name the receiver not used:\n%s", outputs["--api "+d.apiAddr+" status"])
	}
	for cmd, out := range outputs {
		for _, s := range []string{opsKey, teamKey, token, opsSealed, resealed, teamSealed, tokenSealed} {
			if strings.Contains(out, s) {
				t.Errorf("`manifold %s` shows a key, a token or its sealed text:\n%s", cmd, out)
			}
		}
	}
	if found := grepTree(t, state, opsKey, teamKey, token); len(found) > 0 {
		t.Errorf("the state directory (the daemon's log, the notification queue) holds a plaintext:\n%s", strings.Join(found, "\n"))
	}
	log := mustRead(t, state, "daemon.log")
	if !strings.Contains(log, "notification receiver not used") || !strings.Contains(log, `notify \"copied\": secret does not open`) {
		t.Errorf("the daemon's log does not name the receiver not used")
	}
	if accepted, refused := copied.got(); len(accepted)+refused > 0 {
		t.Errorf("the receiver whose key does not open got %d requests", len(accepted)+refused)
	}
	for name, rcv := range map[string]*signedReceiver{"ops": ops, "team": team, "forge": forge} {
		if _, refused := rcv.got(); refused > 0 {
			t.Errorf("%s refused %d requests (a wrong signature or token)", name, refused)
		}
	}
}

// TestSecretEncryptAndRekeyNotify: `secret encrypt --notify` refuses a receiver or
// place that does not exist, and `secret rekey` reseals receivers' keys with the
// rest: -e ENV an environment's (its apps' secrets and notify keys), --platform
// manifold.hcl's, each to the recipients its file names now.
func TestSecretEncryptAndRekeyNotify(t *testing.T) {
	t.Parallel()
	identity := filepath.Join(t.TempDir(), "old.key")
	code, _, errOut := runCLI(t, "secret", "keygen", "-o", identity)
	_, oldRecipient, _ := strings.Cut(strings.TrimSpace(errOut), "Public key: ")
	if code != 0 {
		t.Fatalf("keygen: %s", errOut)
	}
	repo := t.TempDir()
	writeFile(t, repo, "src/w/Procfile", "worker: sleep 600\n")
	writeFile(t, repo, "apps/w.hcl", "app \"w\" {\n  source { path = \"../src/w\" }\n  notify \"team\" {\n    type = \"webhook\"\n    url  = \"https://h.example/team\"\n  }\n}\n")
	manifold := func(recipient, sealed string) string {
		return "recipients = [\"" + recipient + "\"]\nnotify \"ops\" {\n  type = \"webhook\"\n  url  = \"https://h.example/ops\"\n" +
			map[bool]string{true: "  secret = \"" + sealed + "\"\n"}[sealed != ""] + "}\n"
	}
	env := func(recipient, team, greeting string) string {
		s := "environment \"production\" {\n  recipients = [\"" + recipient + "\"]\n  app \"w\" {\n"
		if team != "" {
			s += "    notify \"team\" { secret = \"" + team + "\" }\n    secrets = { GREETING = \"" + greeting + "\" }\n"
		}
		return s + "  }\n}\n"
	}
	writeFile(t, repo, "manifold.hcl", manifold(oldRecipient, ""))
	writeFile(t, repo, "environments/production.hcl", env(oldRecipient, "", ""))
	encrypt := func(value string, args ...string) (int, string, string) {
		return runCLIWithStdin(t, strings.NewReader(value), append([]string{"secret", "encrypt", "--repo", repo}, args...)...)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--notify", "nope", "secret"}, `no notify "nope" in the manifold file of`},
		{[]string{"--notify", "ops", "password"}, `with --notify, NAME is secret (a webhook's key) or token (a forge's), not "password"`},
		{[]string{"-e", "production", "--notify", "team", "secret"}, "give both -e ENV and -a APP (an app's receiver), or neither (a receiver of manifold.hcl)"},
		{[]string{"-e", "production", "-a", "w", "--notify", "ops", "secret"}, `app "w" has no notify "ops" in environment "production"`},
		{[]string{"GREETING"}, "give the environment and the app: -e ENV -a APP"},
	} {
		if code, out, errOut := encrypt("v", tc.args...); code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("secret encrypt %s: exit %d, %q %q; want it to say %q", tc.args, code, out, errOut, tc.want)
		}
	}
	sealed := func(value string, args ...string) string {
		t.Helper()
		code, out, errOut := encrypt(value, args...)
		if code != 0 {
			t.Fatalf("secret encrypt %s: exit %d, %s", args, code, errOut)
		}
		return strings.TrimSpace(out)
	}
	ops := sealed("ops-key", "--notify", "ops", "secret")
	team := sealed("team-key", "-e", "production", "-a", "w", "--notify", "team", "secret")
	greeting := sealed("hello", "-e", "production", "-a", "w", "GREETING")

	newRecipient, newIdentity := generateRecipient(t)
	writeFile(t, repo, "manifold.hcl", manifold(newRecipient, ops))
	writeFile(t, repo, "environments/production.hcl", env(newRecipient, team, greeting))
	if code, out, errOut := runCLI(t, "secret", "rekey", "--repo", repo, "--age-identity", identity); code == 0 || !strings.Contains(errOut, "give -e ENV") {
		t.Errorf("rekey without a place: exit %d, %q %q", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-e", "production"}, "Rekeyed 2 secrets of production to 1 recipient\n"},
		{[]string{"--platform"}, "Rekeyed 1 secret of manifold.hcl to 1 recipient\n"},
	} {
		code, out, errOut := runCLI(t, append([]string{"secret", "rekey", "--repo", repo, "--age-identity", identity}, tc.args...)...)
		if code != 0 || out != tc.want {
			t.Fatalf("rekey %s: exit %d, %q %q", tc.args, code, out, errOut)
		}
	}
	desired, err := loadRepo(repo, "production")
	if err != nil {
		t.Fatal(err)
	}
	w, _ := desired.Lookup("production", "w")
	newKeyring, err := secret.ParseKeyring(strings.NewReader(newIdentity))
	if err != nil {
		t.Fatal(err)
	}
	oldKeyring, err := secret.LoadKeyring(identity)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []struct {
		where  secret.Binding
		sealed string
		want   string
	}{
		{secret.NotifyBinding("", "", "ops", "secret"), desired.Platform.Notify[0].Secret.Sealed, "ops-key"},
		{secret.NotifyBinding("w", "production", "team", "secret"), w.Notify[0].Secret.Sealed, "team-key"},
		{secret.Binding{App: "w", Env: "production", Name: "GREETING"}, w.Secrets["GREETING"].Sealed, "hello"},
	} {
		if got, err := newKeyring.Open(v.where, v.sealed); err != nil || got != v.want {
			t.Errorf("%s: the new key opens %q, %v", v.where, got, err)
		}
		if _, err := oldKeyring.Open(v.where, v.sealed); !errors.Is(err, secret.ErrWrongIdentity) {
			t.Errorf("%s: the removed key still opens the rekeyed value: %v", v.where, err)
		}
	}
}
