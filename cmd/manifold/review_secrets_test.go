package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/secret/secrettest"

	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/secret"
)

// reviewCanary is the review overlay's secret; canary (secret_test.go) production's.
const reviewCanary = "canary-52d7e1-review-value"

// ageKey is secrettest.Keygen.
var ageKey = secrettest.Keygen

// envFile is an environment file whose hello has the secrets given (in order).
func envFile(env, recipient string, secrets ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "environment %q {\n  recipients = [%q]\n  app \"hello\" {\n    secrets = {\n", env, recipient)
	for i := 0; i+1 < len(secrets); i += 2 {
		fmt.Fprintf(&b, "      %s = %q\n", secrets[i], secrets[i+1])
	}
	b.WriteString("    }\n  }\n}\n")
	return b.String()
}

// encryptFor runs `manifold secret encrypt -e env` with value on stdin.
func encryptFor(t *testing.T, repo, env, name, value string) string {
	t.Helper()
	code, out, errOut := runCLIWithStdin(t, strings.NewReader(value+"\n"), "secret", "encrypt", "--repo", repo, "-e", env, "-a", "hello", name)
	if code != 0 || !strings.HasPrefix(out, secret.Prefix) || strings.Contains(out+errOut, value) {
		t.Fatalf("secret encrypt -e %s: exit %d, %q %q", env, code, out, errOut)
	}
	return strings.TrimSpace(out)
}

// TestReviewSecretsEndToEnd: a review app (pr-7) runs the secrets of
// environments/review.hcl, sealed to the review overlay's own key: its web dyno
// answers with the review value while production's answers with its own. No CLI
// output, plan, API answer or file of the state directory holds either value. A
// production value pasted into review.hcl does not open in pr-7 (file:line:col and
// why; the last release serves on). A daemon killed and started again opens the
// review secret anew for a dyno it restarts. After the teardown, pr-7's releases are still
// listed, marked with their ref.
func TestReviewSecretsEndToEnd(t *testing.T) {
	prodKey, prodRecipient := ageKey(t)
	reviewKey, reviewRecipient := ageKey(t)
	identity := filepath.Join(t.TempDir(), "daemon.key")
	if err := os.WriteFile(identity, []byte(mustRead(t, filepath.Dir(prodKey), filepath.Base(prodKey))+mustRead(t, filepath.Dir(reviewKey), filepath.Base(reviewKey))), 0o600); err != nil {
		t.Fatal(err)
	}

	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "src", "hello"), os.DirFS("../../examples/src/hello")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, repo, "apps/hello.hcl", `app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["go"]
  process "web" { health_check = "/healthz" }
  process "worker" { count = 0 }
}
`)
	writeFile(t, repo, "manifold.hcl", "review {\n  refs = [\"refs/pull/*/head\"]\n}\n")
	writeFile(t, repo, "environments/production.hcl", envFile("production", prodRecipient))
	writeFile(t, repo, "environments/review.hcl", envFile("review", reviewRecipient))
	prodSealed := encryptFor(t, repo, "production", "GREETING", canary)
	reviewSealed := encryptFor(t, repo, "review", "GREETING", reviewCanary)
	writeFile(t, repo, "environments/production.hcl", envFile("production", prodRecipient, "GREETING", prodSealed))
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "hello, production's GREETING sealed")
	writeFile(t, repo, "environments/review.hcl", envFile("review", reviewRecipient, "GREETING", reviewSealed))
	git(t, repo, "commit", "-q", "-am", "review apps' own GREETING")

	state := t.TempDir()
	t.Cleanup(func() { killDynos(filepath.Join(state, "dynos")) })
	routerAddr, webhook := freeAddr(t), freeAddr(t)
	daemonArgs := []string{"up", "--repo", "file://" + repo, "--state", state, "--router", routerAddr,
		"--webhook", webhook, "--interval", "1h", "--boot-timeout", "20s", "--age-identity", identity, "-v"}
	d := startDaemonArgs(t, state, routerAddr, daemonArgs...)
	d.webhook = webhook
	answers := func(host, body string) func() error {
		return func() error {
			got, err := d.get(host)
			if err == nil && got != body {
				err = fmt.Errorf("%s answers %q", host, got)
			}
			return err
		}
	}
	eventually(t, 3*time.Minute, "production answers with its secret", answers("hello.production.localhost", canary+" from web.1\n"))

	git(t, repo, "update-ref", "refs/pull/7/head", "HEAD")
	d.hook(t)
	eventually(t, time.Minute, "pr-7's dyno has the review secret", answers("hello.pr-7.localhost", reviewCanary+" from web.1\n"))
	commit := git(t, repo, "rev-parse", "HEAD")

	apiAddr := d.apiAddr
	outputs := map[string]string{}
	for _, args := range [][]string{
		{"--api", apiAddr, "status"}, {"--api", apiAddr, "review", "list"}, {"--api", apiAddr, "ps", "-a", "hello", "-e", "pr-7"},
		{"--api", apiAddr, "releases", "-a", "hello", "-e", "pr-7"}, {"--api", apiAddr, "releases", "-a", "hello", "-e", "pr-7", "--json"},
		{"--api", apiAddr, "logs", "-a", "hello", "-e", "pr-7", "-n", "1500"},
		{"--api", apiAddr, "plan", "--live"}, {"--api", apiAddr, "plan", "--live", "--format", "json"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "markdown"},
		{"plan", "--repo", repo, "--base", "HEAD~1", "--head", "HEAD", "--format", "json"},
	} {
		_, out, errOut := runCLI(t, args...)
		outputs[strings.Join(args, " ")] = out + errOut
	}
	ps, err := d.dynos("hello", "pr-7")
	if err != nil {
		t.Fatal(err)
	}
	// review.hcl is the overlay of the review environments, not one of its own.
	if overlay, err := d.dynos("hello", "review"); err == nil && len(overlay.Dynos) > 0 {
		t.Errorf("the review overlay runs as an environment of its own: %+v", overlay)
	}
	if out := outputs["--api "+apiAddr+" status"]; strings.Contains(out, "hello.review.localhost") {
		t.Errorf("`manifold status` lists the review overlay as an environment:\n%s", out)
	}
	psJSON, err := json.Marshal(ps)
	if err != nil {
		t.Fatal(err)
	}
	outputs["API ps"] = string(psJSON)
	for cmd, out := range outputs {
		if strings.Contains(out, canary) || strings.Contains(out, reviewCanary) {
			t.Errorf("`manifold %s` shows a secret:\n%s", cmd, out)
		}
	}
	if out := outputs["plan --repo "+repo+" --base HEAD~1 --head HEAD"]; !strings.Contains(out, "review") || !strings.Contains(out, "(secret)") {
		t.Errorf("the plan of review.hcl's secret does not say (secret):\n%s", out)
	}
	mark := "review refs/pull/7/head@" + commit[:7]
	if out := outputs["--api "+apiAddr+" releases -a hello -e pr-7"]; !strings.Contains(out, mark) {
		t.Errorf("`manifold releases -e pr-7` does not show %q:\n%s", mark, out)
	}
	if out := outputs["--api "+apiAddr+" releases -a hello -e pr-7 --json"]; !strings.Contains(out, `"ref": "refs/pull/7/head"`) || !strings.Contains(out, `"sealed": "(secret)"`) {
		t.Errorf("releases --json of pr-7 lacks the mark or the masked secret:\n%s", out)
	}

	// kill -9 of the daemon; the new one adopts pr-7's dyno and, when that dyno
	// crashes, opens its secrets again for review (the dyno state's sealed_for).
	d.kill()
	d = startDaemonArgs(t, state, routerAddr, daemonArgs...)
	d.webhook = webhook
	eventually(t, time.Minute, "the adopted pr-7 dyno answers", answers("hello.pr-7.localhost", reviewCanary+" from web.1\n"))
	killed := dynoPid(t, state, "hello.pr-7.web.1.")
	if err := syscall.Kill(-killed, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "pr-7's web.1 restarted by the new daemon", func() error {
		if pid := dynoPid(t, state, "hello.pr-7.web.1."); pid == killed || pid == 0 {
			return fmt.Errorf("web.1 pid %d (killed %d)", pid, killed)
		}
		return nil
	})
	eventually(t, time.Minute, "the restarted pr-7 dyno has the review secret again", answers("hello.pr-7.localhost", reviewCanary+" from web.1\n"))
	if s, err := d.appStatus("hello", "pr-7"); err != nil || s.Release != 1 {
		t.Errorf("pr-7 after the restart: %+v, %v; want v1 still (no new release)", s, err)
	}

	// Production's sealed GREETING pasted into review.hcl, pushed to the pull request.
	git(t, repo, "checkout", "-q", "-b", "paste")
	writeFile(t, repo, "environments/review.hcl", envFile("review", reviewRecipient, "GREETING", prodSealed))
	git(t, repo, "commit", "-q", "-am", "production's GREETING in review")
	git(t, repo, "update-ref", "refs/pull/7/head", "HEAD")
	git(t, repo, "checkout", "-q", "main")
	d.hook(t)
	want := "environments/review.hcl:5:18: secret GREETING does not open: sealed for another place: encrypted for hello/production/GREETING, found at hello/review/GREETING"
	eventually(t, time.Minute, "pr-7 refuses production's secret", func() error {
		s, err := d.appStatus("hello", "pr-7")
		if err == nil && (s.State != reconciler.StateStalled || !strings.Contains(s.Reason, want)) {
			err = fmt.Errorf("%s: %s", s.State, s.Reason)
		}
		return err
	})
	if err := answers("hello.pr-7.localhost", reviewCanary+" from web.1\n")(); err != nil {
		t.Errorf("pr-7's last release after the refusal: %v", err)
	}
	if found := grepTree(t, state, canary, reviewCanary); len(found) > 0 {
		t.Errorf("the state directory holds a plaintext:\n%s", strings.Join(found, "\n"))
	}

	// Teardown: the releases stay, marked.
	git(t, repo, "update-ref", "-d", "refs/pull/7/head")
	var lastHook time.Time
	eventually(t, time.Minute, "pr-7 torn down", func() error {
		if _, err := d.get("hello.pr-7.localhost"); err != nil {
			return nil
		}
		if time.Since(lastHook) > 100*time.Millisecond {
			d.hook(t)
			lastHook = time.Now()
		}
		return fmt.Errorf("pr-7 still answers")
	})
	code, out, errOut := runCLI(t, "--api", apiAddr, "releases", "-a", "hello", "-e", "pr-7")
	if code != 0 || !strings.Contains(out, "v1") || !strings.Contains(out, mark) || strings.Contains(out, "v2") {
		t.Errorf("releases of pr-7 after its teardown: exit %d\n%s%s", code, out, errOut)
	}
}
