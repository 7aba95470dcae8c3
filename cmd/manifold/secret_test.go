package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/secret/secrettest"

	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/secret"
)

// canaries: a secret's plaintext and a sensitive config var's value, which must show
// up in the dyno and nowhere else.
const (
	canary          = "canary-7f3a9c-secret-value"
	sensitiveCanary = "canary-b61e02-sensitive-value"
)

// secretsRepo is a config repo with hello (whose GREETING is a production secret, so
// its web dyno answers "<GREETING> from web.1") and site, which has no secrets. It
// returns the repo and the identity file the daemon opens secrets with: one made by
// Debian's age-keygen; `manifold secret keygen` makes the environment's other
// recipient.
func secretsRepo(t *testing.T) (repo, identity string) {
	t.Helper()
	repo = t.TempDir()
	for _, app := range []string{"hello", "site"} {
		if err := os.CopyFS(filepath.Join(repo, "src", app), os.DirFS("../../examples/src/"+app)); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, repo, "apps/hello.hcl", `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["go"]
  config = { API_TOKEN = "`+sensitiveCanary+`" }
  sensitive = ["API_TOKEN"]
  process "web" { health_check = "/healthz" }
}
`)
	writeFile(t, repo, "apps/site.hcl", "app \"site\" {\n  source { path = \"../src/site\" }\n}\n")

	identity, daemonRecipient := secrettest.Keygen(t)
	operatorKey := filepath.Join(t.TempDir(), "operator.key")
	code, _, errOut := runCLI(t, "secret", "keygen", "-o", operatorKey)
	_, operatorRecipient, _ := strings.Cut(strings.TrimSpace(errOut), "Public key: ")
	if code != 0 || !strings.HasPrefix(operatorRecipient, "age1") {
		t.Fatalf("secret keygen: exit %d, %q", code, errOut)
	}
	if info, err := os.Stat(operatorKey); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("keygen's file: %v, %v", info, err)
	}
	writeEnv(t, repo, []string{daemonRecipient, operatorRecipient}, nil)
	writeEnv(t, repo, []string{daemonRecipient, operatorRecipient}, map[string]string{"GREETING": encrypt(t, repo, "hello", "GREETING", canary)})
	return repo, identity
}

func writeFile(t *testing.T, repo, name, content string) {
	t.Helper()
	path := filepath.Join(repo, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeEnv writes environments/production.hcl: the recipients, hello's secrets.
func writeEnv(t *testing.T, repo string, recipients []string, secrets map[string]string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "environment \"production\" {\n  recipients = [\"%s\"]\n  app \"hello\" {\n    secrets = {\n", strings.Join(recipients, `", "`))
	for _, name := range []string{"GREETING", "MOVED", "TAMPERED", "FOREIGN"} {
		if v, ok := secrets[name]; ok {
			fmt.Fprintf(&b, "      %s = %q\n", name, v)
		}
	}
	b.WriteString("    }\n  }\n}\n")
	writeFile(t, repo, "environments/production.hcl", b.String())
}

// encrypt runs `manifold secret encrypt` with value on stdin.
func encrypt(t *testing.T, repo, app, name, value string) string {
	t.Helper()
	code, out, errOut := runCLIWithStdin(t, strings.NewReader(value+"\n"), "secret", "encrypt", "--repo", repo, "-e", "production", "-a", app, name)
	if code != 0 || !strings.HasPrefix(out, secret.Prefix) || strings.Contains(out+errOut, value) {
		t.Fatalf("secret encrypt: exit %d, %q %q", code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// grepTree returns the files under dir that hold any of needles.
func grepTree(t *testing.T, dir string, needles ...string) []string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				found = append(found, path+" holds "+n)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

// cliOutputs runs every read command of the CLI and every plan format and returns
// their output, by command.
func cliOutputs(t *testing.T, apiAddr, repo string) map[string]string {
	t.Helper()
	outputs := map[string]string{}
	for _, args := range [][]string{
		{"status"}, {"ps", "-a", "hello", "-e", "production"},
		{"releases", "-a", "hello", "-e", "production"}, {"releases", "-a", "hello", "-e", "production", "--json"},
		{"logs", "-a", "hello", "-e", "production", "-n", "1500"}, {"logs", "-a", "site", "-e", "production", "-n", "1500"},
		{"plan", "--live"}, {"plan", "--live", "--format", "markdown"}, {"plan", "--live", "--format", "json"},
		{"plan", "--repo", repo}, {"plan", "--repo", repo, "--format", "markdown"}, {"plan", "--repo", repo, "--format", "json"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json"},
	} {
		if args[0] != "plan" || args[1] == "--live" {
			args = append([]string{"--api", apiAddr}, args...)
		}
		_, out, errOut := runCLI(t, args...)
		outputs[strings.Join(args, " ")] = out + errOut
	}
	return outputs
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestSecretsEndToEnd runs the daemon on the process driver with a production secret:
// the web dyno answers with it (its environment has it) while no file of the state
// directory, no CLI output and no plan format holds it; a daemon killed -9 and
// started again re-opens it for a dyno it restarts; a secret moved, tampered with or
// sealed to a foreign key fails hello's deploy naming file:line:col while its last
// release serves and site is untouched.
func TestSecretsEndToEnd(t *testing.T) {
	repo, identity := secretsRepo(t)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "hello and site, GREETING sealed")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr, apiAddr := freeAddr(t), socketAPI(state)
	args := []string{"up", "--repo", "file://" + repo, "--state", state, "--router", routerAddr,
		"--interval", "500ms", "--boot-timeout", "20s", "--age-identity", identity, "-v"}
	d := startDaemonArgs(t, state, routerAddr, args...)
	host := "hello.production.localhost"
	waitGreeting := func(what string) {
		t.Helper()
		eventually(t, 2*time.Minute, what, func() error {
			body, err := d.get(host)
			if err == nil && body != canary+" from web.1\n" {
				return fmt.Errorf("body %q", body)
			}
			return err
		})
	}
	waitGreeting("hello's web dyno answers with the secret")
	eventually(t, time.Minute, "site answers", func() error { _, err := d.get("site.production.localhost"); return err })

	// A one-off has it too (compared by hash: a command line is logged).
	code, out, errOut := runCLI(t, "--api", apiAddr, "run", "-a", "hello", "-e", "production", "--", `printf %s "$GREETING" | sha256sum`)
	if code != 0 || !strings.Contains(out, sha256Hex(canary)) {
		t.Errorf("one-off: exit %d, %q %q", code, out, errOut)
	}

	// A second commit reseals GREETING (same value) and changes the sensitive var, so
	// that the plans between commits have something to hide.
	writeEnv(t, repo, []string{recipientOf(t, identity)}, map[string]string{"GREETING": encrypt(t, repo, "hello", "GREETING", canary)})
	writeFile(t, repo, "apps/hello.hcl", strings.Replace(mustRead(t, repo, "apps/hello.hcl"), sensitiveCanary, sensitiveCanary+"-2", 1))
	git(t, repo, "commit", "-q", "-am", "reseal GREETING, rotate API_TOKEN")
	eventually(t, 2*time.Minute, "the resealed release is live", func() error {
		s, err := d.appStatus("hello", "production")
		if err == nil && (s.Release != 2 || s.State != reconciler.StateReady) {
			err = fmt.Errorf("v%d %s %s", s.Release, s.State, s.Reason)
		}
		return err
	})
	waitGreeting("the resealed secret")
	outputs := cliOutputs(t, apiAddr, repo)
	ps, err := d.dynos("hello", "production")
	if err != nil {
		t.Fatal(err)
	}
	psJSON, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	outputs["API ps"] = string(psJSON)
	if !strings.Contains(string(psJSON), `"API_TOKEN":"(secret)"`) {
		t.Errorf("the API's ps does not mask the sensitive var: %s", psJSON)
	}
	for cmd, out := range outputs {
		if strings.Contains(out, canary) || strings.Contains(out, sensitiveCanary) {
			t.Errorf("`manifold %s` shows a secret:\n%s", cmd, out)
		}
	}
	for _, cmd := range []string{"plan --repo " + repo + " --base HEAD~1 --head HEAD", "--api " + apiAddr + " releases -a hello -e production --json"} {
		if !strings.Contains(outputs[cmd], "(secret") {
			t.Errorf("`manifold %s` does not say (secret…):\n%s", cmd, outputs[cmd])
		}
	}
	if found := grepTree(t, state, canary); len(found) > 0 {
		t.Errorf("the state directory holds the plaintext:\n%s", strings.Join(found, "\n"))
	}
	for _, name := range []string{"applied.json", "ledger.db"} {
		if info, err := os.Stat(filepath.Join(state, name)); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", name, info, err)
		}
	}
	dynoFiles, err := filepath.Glob(filepath.Join(state, "dynos", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range dynoFiles {
		if info, err := os.Stat(f); err != nil || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, info, err)
		}
	}

	// kill -9 of the daemon, a new one adopts the dyno; the dyno then crashes and is
	// started again by the new daemon, which opens its secret anew.
	d.kill()
	d = startDaemonArgs(t, state, routerAddr, args...)
	waitGreeting("the adopted dyno answers")
	killed := dynoPid(t, state, "hello.production.web.1.")
	if err := syscall.Kill(-killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "web.1 restarted by the new daemon", func() error {
		if pid := dynoPid(t, state, "hello.production.web.1."); pid == killed || pid == 0 {
			return fmt.Errorf("web.1 pid %d (killed %d)", pid, killed)
		}
		return nil
	})
	waitGreeting("the restarted dyno has its secret again")

	// Bad secrets: each fails hello's deploy with file:line:col and the reason; v2
	// keeps serving and site is untouched.
	greeting := encrypt(t, repo, "hello", "GREETING", canary)
	foreign, _ := generateRecipient(t)
	foreignSealed, err := secret.Seal(secret.Binding{App: "hello", Env: "production", Name: "FOREIGN"}, "x", []string{foreign})
	if err != nil {
		t.Fatal(err)
	}
	tampered := []byte(encrypt(t, repo, "hello", "TAMPERED", "tampered-value-0451"))
	tampered[len(tampered)-10] ^= 'A' ^ 'B'
	recipients := []string{recipientOf(t, identity)}
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		want    string
	}{
		{"moved", map[string]string{"GREETING": greeting, "MOVED": greeting},
			"environments/production.hcl:6:15: secret MOVED does not open: sealed for another place: encrypted for hello/production/GREETING, found at hello/production/MOVED"},
		{"tampered", map[string]string{"GREETING": greeting, "TAMPERED": string(tampered)},
			"environments/production.hcl:6:18: secret TAMPERED does not open: not a valid sealed secret"},
		{"foreign key", map[string]string{"GREETING": greeting, "FOREIGN": foreignSealed},
			"environments/production.hcl:6:17: secret FOREIGN does not open: not encrypted to this daemon's age identity"},
	} {
		writeEnv(t, repo, recipients, tc.secrets)
		git(t, repo, "commit", "-q", "-am", tc.name)
		eventually(t, time.Minute, tc.name+": hello stalls saying where and why", func() error {
			s, err := d.appStatus("hello", "production")
			if err == nil && (s.State != reconciler.StateStalled || !strings.Contains(s.Reason, tc.want)) {
				err = fmt.Errorf("%s: %s", s.State, s.Reason)
			}
			return err
		})
		if body, err := d.get(host); err != nil || body != canary+" from web.1\n" {
			t.Errorf("%s: the last release does not serve: %q %v", tc.name, body, err)
		}
		if s, err := d.appStatus("site", "production"); err != nil || s.State != reconciler.StateReady || s.Release != 1 {
			t.Errorf("%s: site is %+v, %v", tc.name, s, err)
		}
	}
	if found := grepTree(t, state, canary); len(found) > 0 {
		t.Errorf("the state directory holds the plaintext:\n%s", strings.Join(found, "\n"))
	}
}

func mustRead(t *testing.T, repo, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repo, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// recipientOf reads the public key from an identity file's "# public key:" comment.
func recipientOf(t *testing.T, identity string) string {
	t.Helper()
	for _, line := range strings.Split(mustRead(t, filepath.Dir(identity), filepath.Base(identity)), "\n") {
		if r, ok := strings.CutPrefix(line, "# public key: "); ok {
			return r
		}
	}
	t.Fatalf("%s has no public key comment", identity)
	return ""
}

func generateRecipient(t *testing.T) (string, string) {
	t.Helper()
	file, recipient, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return recipient, file
}

// TestSecretsDockerDriver: on the Docker driver the web container answers with the
// secret and a one-off sees it, while `docker inspect` of every container the daemon
// made (Env, Cmd, labels) and the state directory hold no plaintext, and the labels no
// config value at all.
func TestSecretsDockerDriver(t *testing.T) {
	needDocker(t)
	instance := fmt.Sprintf("sec%d", time.Now().UnixNano()%1_000_000_000)
	t.Cleanup(func() { removeInstance(t, instance) })
	repo, identity := secretsRepo(t)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "hello and site, GREETING sealed")

	state := t.TempDir()
	routerAddr, apiAddr := freeAddr(t), socketAPI(state)
	d := startDaemonArgs(t, state, routerAddr, "up", "--repo", "file://"+repo, "--state", state,
		"--router", routerAddr, "--interval", "500ms", "--boot-timeout", "30s",
		"--driver", "docker", "--docker-instance", instance, "--age-identity", identity, "-v")
	eventually(t, 3*time.Minute, "hello's container answers with the secret", func() error {
		body, err := d.get("hello.production.localhost")
		if err == nil && body != canary+" from web.1\n" {
			return fmt.Errorf("body %q", body)
		}
		return err
	})
	eventually(t, 3*time.Minute, "site's container answers", func() error { _, err := d.get("site.production.localhost"); return err })
	code, out, errOut := runCLI(t, "--api", apiAddr, "run", "-a", "hello", "-e", "production", "--", `printf %s "$GREETING" | sha256sum`)
	if code != 0 || !strings.Contains(out, sha256Hex(canary)) {
		t.Errorf("one-off in a container: exit %d, %q %q", code, out, errOut)
	}

	// The dynos' containers (builds and one-offs are gone by now).
	ids, err := exec.Command("docker", "ps", "-aq", "--filter", "label=manifold.instance="+instance, "--filter", "label=manifold.dyno").Output()
	if err != nil || len(strings.Fields(string(ids))) < 2 {
		t.Fatalf("containers of %s: %q %v", instance, ids, err)
	}
	for _, id := range strings.Fields(string(ids)) {
		inspect, err := exec.Command("docker", "inspect", id).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(inspect), canary) {
			t.Errorf("docker inspect %s shows the secret", id)
		}
		labels, err := exec.Command("docker", "inspect", "--format", "{{json .Config.Labels}}", id).Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(labels), sensitiveCanary) || !strings.Contains(string(labels), "manifold.config-digest") {
			t.Errorf("labels of %s hold a config value or no digest: %s", id, labels)
		}
	}
	for cmd, out := range cliOutputs(t, apiAddr, repo) {
		if strings.Contains(out, canary) || strings.Contains(out, sensitiveCanary) {
			t.Errorf("`manifold %s` shows a secret:\n%s", cmd, out)
		}
	}
	if found := grepTree(t, state, canary); len(found) > 0 {
		t.Errorf("the state directory holds the plaintext:\n%s", strings.Join(found, "\n"))
	}
}

// TestSecretRekey: after the environment's recipients change, rekey re-seals every
// secret in place for them; the old key no longer opens it. Without an identity it
// rewrites nothing.
func TestSecretRekey(t *testing.T) {
	t.Parallel()
	repo, identity := secretsRepo(t)
	newRecipient, newIdentity := generateRecipient(t)
	envFile := mustRead(t, repo, "environments/production.hcl")
	start := strings.Index(envFile, "recipients = [")
	end := start + strings.Index(envFile[start:], "]") + 1
	writeFile(t, repo, "environments/production.hcl", envFile[:start]+`recipients = ["`+newRecipient+`"]`+envFile[end:])
	before := mustRead(t, repo, "environments/production.hcl")

	code, out, errOut := runCLI(t, "secret", "rekey", "--repo", repo, "-e", "production", "--age-identity", "")
	if code == 0 || !strings.Contains(errOut, "environments/production.hcl:5:18: secret GREETING: no age identity") {
		t.Errorf("rekey without an identity: exit %d, %q %q", code, out, errOut)
	}
	if mustRead(t, repo, "environments/production.hcl") != before {
		t.Error("rekey without an identity rewrote the file")
	}

	code, out, errOut = runCLI(t, "secret", "rekey", "--repo", repo, "-e", "production", "--age-identity", identity)
	if code != 0 || out != "Rekeyed 1 secret of production to 1 recipient\n" {
		t.Fatalf("rekey: exit %d, %q %q", code, out, errOut)
	}
	desired, err := loadRepo(repo, "production")
	if err != nil {
		t.Fatal(err)
	}
	hello, found := desired.Lookup("production", "hello")
	if !found {
		t.Fatal("no production app hello in the repo")
	}
	where := secret.Binding{App: "hello", Env: "production", Name: "GREETING"}
	newKeyring, err := secret.ParseKeyring(strings.NewReader(newIdentity))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := newKeyring.Open(where, hello.Secrets["GREETING"].Sealed); err != nil || got != canary {
		t.Errorf("the new key opens %q, %v", got, err)
	}
	oldKeyring, err := secret.LoadKeyring(identity)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oldKeyring.Open(where, hello.Secrets["GREETING"].Sealed); !errors.Is(err, secret.ErrWrongIdentity) {
		t.Errorf("the removed key still opens the rekeyed secret: %v", err)
	}
}
