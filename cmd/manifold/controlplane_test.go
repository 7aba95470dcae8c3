package main

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// staticSiteRepo is a git config repo with one app, site, that needs no build.
func staticSiteRepo(t *testing.T) string {
	t.Helper()
	repo := t.TempDir()
	if err := os.CopyFS(filepath.Join(repo, "src", "site"), os.DirFS("../../examples/src/site")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	site := "app \"site\" {\n  source { path = \"../src/site\" }\n  process \"web\" { size = \"basic\" }\n}\n"
	if err := os.WriteFile(filepath.Join(repo, "apps", "site.hcl"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "site")
	return repo
}

// TestControlPlane drives the daemon's API the ways a team would: the socket (mode
// 0600, no token, found from --state), a token made through it and used over TCP
// (401 without, 403 outside its scope or apps, its name the author of a rollback),
// revocation, a webhook listener apart from the API, and a one-off dyno of the
// process driver trying the socket and the TCP API with what its environment holds:
// run as the dyno user, the socket's mode keeps it out; run as the daemon's user
// (--dyno-user root here, a daemon of a normal user elsewhere), the peer check does.
func TestControlPlane(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test runs a daemon as root, as CI does")
	}
	client := probeBinary(t)
	for _, tc := range []struct{ dynoUser, refusal string }{
		{"", "permission denied"},
		{"root", "reach the manifold daemon"}, // closed at accept: EOF or reset
	} {
		t.Run("dyno user "+cmp.Or(tc.dynoUser, "default"), func(t *testing.T) {
			testControlPlane(t, client, tc.dynoUser, tc.refusal)
		})
	}
}

// probeBinary copies this test binary where any user can run it: a dyno runs it as
// the manifold CLI.
func probeBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "manifold-probe")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "manifold")
	if err := os.WriteFile(path, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func testControlPlane(t *testing.T, client, dynoUser, refusal string) {
	repo := staticSiteRepo(t)
	state := t.TempDir()
	routerAddr, tcpAPI, webhook := freeAddr(t), freeAddr(t), freeAddr(t)
	t.Setenv("MANIFOLD_TOKEN", "") // the CLI's own environment must not lend it one
	args := []string{"up", "--repo", "file://" + repo, "--state", state,
		"--router", routerAddr, "--api", tcpAPI, "--webhook", webhook, "--interval", "1h", "-v"}
	if dynoUser != "" {
		args = append(args, "--dyno-user", dynoUser)
	}
	d := startDaemonArgs(t, state, routerAddr, args...)
	eventually(t, 2*time.Minute, "site is up", func() error {
		_, err := d.get("site.default.localhost")
		return err
	})

	sock := filepath.Join(state, "manifold.sock")
	info, err := os.Stat(sock)
	if err != nil || info.Mode()&os.ModeSocket == 0 || info.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v, %v; want a socket of mode 0600", sock, info.Mode(), err)
	}
	if code, out, errOut := runCLI(t, "--state", state, "status"); code != 0 || !strings.Contains(out, "site") {
		t.Fatalf("status over the socket: exit %d\n%s%s", code, out, errOut)
	}

	code, secret, errOut := runCLI(t, "--state", state, "token", "create", "--name", "ci", "--scope", "deploy", "--app", "site", "--ttl", "720h")
	secret = strings.TrimSpace(secret)
	if code != 0 || !strings.HasPrefix(secret, "mf_") || !strings.Contains(errOut, "shown only now") {
		t.Fatalf("token create: exit %d %q %q", code, secret, errOut)
	}
	tokenFile, err := os.ReadFile(filepath.Join(state, "tokens.db"))
	if err != nil || strings.Contains(string(tokenFile), secret[3:]) {
		t.Fatalf("tokens.db holds the secret (or is missing: %v)", err)
	}

	tcp := "http://" + tcpAPI
	if code, _, errOut := runCLI(t, "--api", tcp, "releases", "-a", "site"); code == 0 || !strings.Contains(errOut, "missing bearer token") {
		t.Errorf("TCP without a token: exit %d %q", code, errOut)
	}
	t.Setenv("MANIFOLD_TOKEN", secret)
	if code, out, errOut := runCLI(t, "--api", tcp, "releases", "-a", "site"); code != 0 || !strings.Contains(out, "v1") {
		t.Errorf("releases with the token: exit %d\n%s%s", code, out, errOut)
	}
	for _, args := range [][]string{{"status"}, {"run", "-a", "site", "--", "true"}, {"token", "list"}} {
		if code, _, errOut := runCLI(t, append([]string{"--api", tcp}, args...)...); code == 0 || !strings.Contains(errOut, "ci") {
			t.Errorf("%v with a deploy token for site: exit %d %q, want refused", args, code, errOut)
		}
	}
	if code, out, errOut := runCLI(t, "--api", tcp, "rollback", "-a", "site", "v1"); code != 0 {
		t.Fatalf("rollback with the token: exit %d\n%s%s", code, out, errOut)
	}
	eventually(t, 10*time.Second, "the api log line names the token", func() error {
		_, out, errOut := runCLI(t, "--api", tcp, "logs", "-a", "site", "--source", "api")
		if !strings.Contains(out, "Rollback to v1 by ci") {
			return fmt.Errorf("logs: %s%s", out, errOut)
		}
		return nil
	})
	t.Setenv("MANIFOLD_TOKEN", "")
	if code, out, _ := runCLI(t, "--state", state, "releases", "-a", "site"); code != 0 || !strings.Contains(out, "ci") {
		t.Errorf("the rollback's author is not ci:\n%s", out)
	}

	// From inside a one-off: the socket refuses the dyno, the TCP API wants a token
	// its environment does not have. The client is this test binary, run as manifold.
	probe := fmt.Sprintf("env; id -u; echo ---; MANIFOLD_TEST_EXEC=1 %[1]s --api unix://%[2]s status && echo SOCKET-REACHED; "+
		"MANIFOLD_TEST_EXEC=1 %[1]s --api %[3]s status && echo TCP-REACHED; exit 0", client, sock, tcp)
	code, out, errOut := runCLI(t, "--state", state, "run", "-a", "site", "--", probe)
	if code != 0 || !strings.Contains(out, "---") {
		t.Fatalf("probe one-off: exit %d\n%s%s", code, out, errOut)
	}
	env, probes, _ := strings.Cut(out, "---")
	if strings.Contains(probes, "REACHED") {
		t.Errorf("a one-off reached the control plane:\n%s", out)
	}
	if strings.Contains(env, "MANIFOLD") || strings.Contains(env, secret) {
		t.Errorf("a dyno's environment holds the daemon's:\n%s", env)
	}
	if !strings.Contains(errOut, "missing bearer token") || !strings.Contains(errOut, refusal) {
		t.Errorf("the probes did not fail with %q and for want of a token:\n%s", refusal, errOut)
	}
	uid := strings.TrimSpace(env[strings.LastIndexByte(strings.TrimSpace(env), '\n')+1:])
	data, err := os.ReadFile(d.log.Name())
	if err != nil {
		t.Fatal(err)
	}
	switch dynoUser {
	case "":
		if uid == "0" {
			t.Errorf("a dyno of a daemon run as root runs as root")
		}
	case "root":
		if !strings.Contains(string(data), "the peer is a dyno's process") {
			t.Errorf("the daemon did not log the refused dyno")
		}
	}

	if code, out, errOut := runCLI(t, "--state", state, "token", "list"); code != 0 || !strings.Contains(out, "ci") || strings.Contains(out, secret) {
		t.Errorf("token list: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "--state", state, "token", "revoke", "ci"); code != 0 {
		t.Fatalf("revoke: %s", errOut)
	}
	t.Setenv("MANIFOLD_TOKEN", secret)
	if code, _, errOut := runCLI(t, "--api", tcp, "releases", "-a", "site"); code == 0 || !strings.Contains(errOut, "invalid") {
		t.Errorf("a revoked token: exit %d %q", code, errOut)
	}

	// The webhook has its own listener; the API's has no /hooks/git.
	resp, err := d.api.HTTP.Post(d.api.BaseURL+"/hooks/git", "application/json", strings.NewReader("{}"))
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("POST /hooks/git on the API: %d, want 404", resp.StatusCode)
		}
	}
	resp, err = http.Post("http://"+webhook+"/hooks/git", "application/json", strings.NewReader("{}"))
	if err != nil || resp.StatusCode != 202 {
		t.Errorf("POST /hooks/git on --webhook: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestUpRefusesExposedListeners: a non-loopback API without TLS, or webhook without
// a secret, does not start.
func TestUpRefusesExposedListeners(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"api on every interface", []string{"--api", "0.0.0.0:0"}, "--api 0.0.0.0:0 is not a loopback address: give --api-tls-cert and --api-tls-key"},
		{"api on no host", []string{"--api", ":0"}, "is not a loopback address"},
		{"webhook on every interface", []string{"--webhook", "0.0.0.0:0"}, "--webhook 0.0.0.0:0 is not a loopback address: give --webhook-secret-file"},
		{"empty secret file", []string{"--webhook", "0.0.0.0:0", "--webhook-secret-file", os.DevNull}, "is empty"},
		{"cert without key", []string{"--api", "127.0.0.1:0", "--api-tls-cert", "x.pem"}, "go together"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			repo := t.TempDir()
			if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
				t.Fatal(err)
			}
			state := t.TempDir()
			args := append([]string{"up", "--repo", repo, "--state", state, "--router", "127.0.0.1:0"}, tt.args...)
			code, _, errOut := runCLI(t, args...)
			if code == 0 || !strings.Contains(errOut, tt.want) {
				t.Errorf("up %v: exit %d %q, want %q", tt.args, code, errOut, tt.want)
			}
			if _, err := os.Stat(filepath.Join(state, "manifold.sock")); !os.IsNotExist(err) {
				t.Errorf("the socket is left behind: %v", err)
			}
		})
	}
}
