package slug_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/reconciler/slug"
)

func TestBuildGo(t *testing.T) {
	b := newBuilder(t)
	var out syncBuffer
	src := "testdata/apps/hello-go"
	req := slug.Request{App: "hello", SourceDir: src, Stack: "manifold-24", Output: &out,
		Config: map[string]string{"GREETING": "hi"}}
	s, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out.String())
	}
	if s.Cached {
		t.Error("first build reported Cached")
	}
	if !strings.HasPrefix(s.Key, "sha256:") || len(s.Key) != 71 {
		t.Errorf("key %q is not sha256:<hex>", s.Key)
	}
	if want := []string{"go"}; !reflect.DeepEqual(s.Buildpacks, want) {
		t.Errorf("buildpacks %v, want %v", s.Buildpacks, want)
	}
	if got := s.ProcessTypes["web"]; got != "bin/hello" {
		t.Errorf("web = %q, want bin/hello (from bin/release)", got)
	}
	for _, want := range []string{"-----> Go app detected", "-----> Discovering process types", "Default types for buildpack -> web"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if mode, ok := tarEntries(t, s.Path)["./bin/hello"]; !ok || mode&0o111 == 0 {
		t.Fatalf("slug has no executable ./bin/hello (mode %v, present %v)", mode, ok)
	}
	dir := t.TempDir()
	if err := slug.Unpack(context.Background(), s.Path, dir); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(filepath.Join(dir, "bin", "hello"), "-once").Output()
	if err != nil || string(got) != "hello from a slug\n" {
		t.Fatalf("built binary printed %q, %v", got, err)
	}

	// A config change that no build step reads reuses the slug (Heroku semantics).
	req.Config = map[string]string{"GREETING": "hello"}
	again, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Key != s.Key || again.ProcessTypes["web"] != "bin/hello" {
		t.Errorf("config change rebuilt: %+v (first %s)", again, s.Key)
	}
	// GOFLAGS is declared by the go buildpack: it changes the key.
	req.Config["GOFLAGS"] = "-ldflags=-s"
	if key := mustBuild(t, b, req).Key; key == s.Key {
		t.Error("GOFLAGS change kept the slug key")
	}
}

func mustBuild(t *testing.T, b *slug.Builder, req slug.Request) slug.Slug {
	t.Helper()
	var out syncBuffer
	if req.Output == nil {
		req.Output = &out
	}
	s, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("build %s: %v\n%s", req.App, err, out.String())
	}
	return s
}

func TestBuildStaticServes(t *testing.T) {
	b := newBuilder(t)
	src := app(t, map[string]string{"public/index.html": "<h1>static</h1>\n"})
	s := mustBuild(t, b, slug.Request{App: "site", SourceDir: src})
	want := "static-server public"
	if s.ProcessTypes["web"] != want || s.Buildpacks[0] != "static" {
		t.Fatalf("got %+v, want web %q by static", s, want)
	}
	dir := t.TempDir()
	if err := slug.Unpack(context.Background(), s.Path, dir); err != nil {
		t.Fatal(err)
	}
	// Run the web command as a dyno would and fetch the page.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cmd := exec.Command("/bin/sh", "-c", "exec "+s.ProcessTypes["web"])
	cmd.Dir = dir
	// The slug's bin/ comes first on PATH, as the drivers set it.
	cmd.Env = append(os.Environ(), "PORT="+port, "PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	eventually(t, 10*time.Second, "static-server answers", func() error {
		resp, err := http.Get("http://127.0.0.1:" + port + "/index.html")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if string(body) != "<h1>static</h1>\n" {
			t.Fatalf("served %q", body)
		}
		return nil
	})
}

func TestBuildProcfileShipsSource(t *testing.T) {
	b := newBuilder(t)
	src := app(t, map[string]string{
		"Procfile":      "web: sh server.sh\nworker: sh work.sh   \n# a comment\n",
		"server.sh*":    "echo serving\n",
		"lib/data.txt":  "data\n",
		".git/HEAD":     "ref: refs/heads/main\n",
		"work.sh":       "echo working\n",
		"nested/.git/x": "no\n",
		"empty/.keep":   "",
	})
	if err := os.Symlink("lib/data.txt", filepath.Join(src, "data-link")); err != nil {
		t.Fatal(err)
	}
	s := mustBuild(t, b, slug.Request{App: "shell", SourceDir: src})
	want := map[string]string{"web": "sh server.sh", "worker": "sh work.sh"}
	if !reflect.DeepEqual(s.ProcessTypes, want) {
		t.Errorf("process types %v, want %v", s.ProcessTypes, want)
	}
	entries := tarEntries(t, s.Path)
	if entries["./server.sh"] != 0o755 || entries["./work.sh"] != 0o644 {
		t.Errorf("modes not kept: server.sh %v work.sh %v", entries["./server.sh"], entries["./work.sh"])
	}
	for name := range entries {
		if strings.Contains(name, ".git/") {
			t.Errorf("slug ships %s", name)
		}
	}
	dir := t.TempDir()
	if err := slug.Unpack(context.Background(), s.Path, dir); err != nil {
		t.Fatal(err)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "data-link")); err != nil || string(raw) != "data\n" {
		t.Errorf("symlink in slug: %q, %v", raw, err)
	}
}

// shoutDir is the third-party style buildpack of testdata.
func shoutDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("testdata/buildpacks/shout")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildThirdPartyBuildpack(t *testing.T) {
	b := newBuilder(t)
	src := app(t, map[string]string{"shout.txt": "hello\n", "Procfile": "worker: bin/web --forever\n"})
	var out syncBuffer
	req := slug.Request{App: "loud", SourceDir: src, Buildpacks: []string{shoutDir(t), "procfile"},
		Config: map[string]string{"BUILD_SUFFIX": "!", "DATABASE_URL": "postgres://x"}, Output: &out}
	s, err := b.Build(context.Background(), req)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if want := []string{shoutDir(t), "procfile"}; !reflect.DeepEqual(s.Buildpacks, want) {
		t.Errorf("ran %v, want %v", s.Buildpacks, want)
	}
	// default_process_types merged under the Procfile.
	if want := map[string]string{"web": "bin/web", "worker": "bin/web --forever"}; !reflect.DeepEqual(s.ProcessTypes, want) {
		t.Errorf("process types %v, want %v", s.ProcessTypes, want)
	}
	for _, want := range []string{"-----> Shout app detected", "build number 1", "env: BUILD_SUFFIX", "env: DATABASE_URL", "-----> Procfile app detected"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	dir := t.TempDir()
	if err := slug.Unpack(context.Background(), s.Path, dir); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command("/bin/sh", "-c", "cd "+dir+" && bin/web").Output()
	if err != nil || string(got) != "HELLO\n!\n" {
		t.Fatalf("bin/web printed %q, %v", got, err)
	}

	// Non-build config: cached. BUILD_ var: rebuilt, with the cache dir of build 1.
	req.Config = map[string]string{"BUILD_SUFFIX": "!", "DATABASE_URL": "postgres://y"}
	req.Output = nil
	if again := mustBuild(t, b, req); !again.Cached || again.Key != s.Key {
		t.Errorf("DATABASE_URL change rebuilt (%s vs %s)", again.Key, s.Key)
	}
	out = syncBuffer{}
	req.Config["BUILD_SUFFIX"] = "?"
	req.Output = &out
	rebuilt := mustBuild(t, b, req)
	if rebuilt.Cached || rebuilt.Key == s.Key {
		t.Errorf("BUILD_SUFFIX change did not rebuild")
	}
	if !strings.Contains(out.String(), "build number 2") {
		t.Errorf("the build cache did not survive:\n%s", out.String())
	}
	// A changed buildpack is a new key too: its content is part of it.
	src2 := app(t, map[string]string{"shout.txt": "hello\n"})
	before := mustBuild(t, b, slug.Request{App: "loud2", SourceDir: src2, Buildpacks: []string{shoutDir(t)}})
	bpCopy := t.TempDir()
	copyDir(t, shoutDir(t), bpCopy)
	writeTree(t, bpCopy, map[string]string{"README": "changed\n"})
	after := mustBuild(t, b, slug.Request{App: "loud2", SourceDir: src2, Buildpacks: []string{bpCopy}})
	if before.Key == after.Key {
		t.Error("two different buildpack folders gave one key")
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestBuildGitBuildpack(t *testing.T) {
	repo := t.TempDir()
	copyDir(t, shoutDir(t), repo)
	git(t, repo, "init", "-q", "-b", "main")
	git(t, repo, "add", ".")
	git(t, repo, "commit", "-q", "-m", "v1")
	git(t, repo, "tag", "v1")
	v1 := git(t, repo, "rev-parse", "HEAD")
	// A later commit on main that breaks compile: #v1 must not see it.
	writeTree(t, repo, map[string]string{"bin/compile*": "#!/bin/sh\necho broken; exit 1\n"})
	git(t, repo, "commit", "-q", "-am", "break")

	b := newBuilder(t)
	src := app(t, map[string]string{"shout.txt": "git\n"})
	url := "file://" + repo
	tests := []struct {
		name, ref string
		wantErr   error
	}{
		{"tag", "#v1", nil},
		{"commit", "#" + v1, nil},
		{"branch", "#main", slug.ErrCompile},
		{"missing ref", "#v9", slug.ErrBuildpack},
	}
	keys := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out syncBuffer
			s, err := b.Build(context.Background(), slug.Request{App: "gitbp", SourceDir: src, Buildpacks: []string{url + tt.ref}, Output: &out})
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if s.ProcessTypes["web"] != "bin/web" || !strings.Contains(out.String(), "Shouting") {
				t.Errorf("buildpack from git did not run: %+v\n%s", s, out.String())
			}
			keys[tt.name] = s.Key
		})
	}
	if keys["tag"] == "" || keys["commit"] == "" {
		t.Errorf("tag and commit builds gave keys %v", keys)
	}
}

func TestBuildErrors(t *testing.T) {
	bpDir := t.TempDir()
	writeTree(t, bpDir, map[string]string{
		"fails/bin/detect*":  "#!/bin/sh\necho Failing\n",
		"fails/bin/compile*": "#!/bin/sh\ni=1\nwhile [ $i -le 30 ]; do echo \"line $i\"; i=$((i+1)); done\nexit 3\n",
		"slow/bin/detect*":   "#!/bin/sh\necho Slow\n",
		// The background sleep proves the whole process group is killed.
		"slow/bin/compile*":    "#!/bin/sh\nsleep 60 &\necho $! > \"$2/bg.pid\"\necho sleeping\nsleep 60\n",
		"nobin/README":         "not a buildpack\n",
		"badyaml/bin/detect*":  "#!/bin/sh\necho Bad\n",
		"badyaml/bin/compile*": "#!/bin/sh\n",
		"badyaml/bin/release*": "#!/bin/sh\necho 'default_process_types: [unclosed'\n",
	})
	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i*7919>>3) ^ byte(i>>11)
	}
	tests := []struct {
		name      string
		files     map[string]string
		packs     []string
		sizeLimit int64
		timeLimit time.Duration
		wantErr   error
		wantMsg   []string
	}{
		{name: "nothing detected", files: map[string]string{"README.md": "hi"}, wantErr: slug.ErrNoBuildpack,
			wantMsg: []string{"build slug for broken:", "no buildpack detected"}},
		{name: "named buildpack refuses", files: map[string]string{"README.md": "hi"}, packs: []string{shoutDir(t)},
			wantErr: slug.ErrNoBuildpack, wantMsg: []string{"not compatible"}},
		{name: "compile fails", files: map[string]string{"x": "1"}, packs: []string{filepath.Join(bpDir, "fails")},
			wantErr: slug.ErrCompile, wantMsg: []string{"broken", "exit status 3", "last 20 lines", "line 30", "line 11"}},
		{name: "unknown buildpack", files: map[string]string{"Procfile": "web: x"}, packs: []string{"nosuch"},
			wantErr: slug.ErrBuildpack, wantMsg: []string{"nosuch"}},
		{name: "folder without bin", files: map[string]string{"Procfile": "web: x"}, packs: []string{filepath.Join(bpDir, "nobin")},
			wantErr: slug.ErrBuildpack, wantMsg: []string{"has no bin/detect"}},
		{name: "bad release yaml", files: map[string]string{"Procfile": "web: x"}, packs: []string{filepath.Join(bpDir, "badyaml")},
			wantErr: slug.ErrCompile, wantMsg: []string{"invalid YAML"}},
		{name: "too large", files: map[string]string{"Procfile": "web: x", "blob": string(big)}, sizeLimit: 64 << 10,
			wantErr: slug.ErrTooLarge, wantMsg: []string{"64.0K"}},
		{name: "too slow", files: map[string]string{"x": "1"}, packs: []string{filepath.Join(bpDir, "slow")},
			timeLimit: 1500 * time.Millisecond, wantErr: slug.ErrTimeout, wantMsg: []string{"sleeping", "killed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newBuilder(t)
			b.SizeLimit, b.TimeLimit = tt.sizeLimit, tt.timeLimit
			b.CacheDir = t.TempDir()
			_, err := b.Build(context.Background(), slug.Request{App: "broken", SourceDir: app(t, tt.files), Buildpacks: tt.packs})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			var be *slug.BuildError
			if !errors.As(err, &be) || be.App != "broken" {
				t.Errorf("error %T is not a *BuildError naming the app", err)
			}
			for _, want := range tt.wantMsg {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if tt.name == "compile fails" && (len(be.Output) != 20 || strings.Contains(err.Error(), "line 10\n")) {
				t.Errorf("error carries %d lines, want the last 20", len(be.Output))
			}
			if files := storeFiles(t, b); len(files) != 0 {
				t.Errorf("failed build left %v in the store", files)
			}
			if tt.wantErr == slug.ErrTimeout {
				assertKilled(t, filepath.Join(b.CacheDir, "broken", "bg.pid"))
			}
		})
	}
}

// assertKilled waits (bounded) until the process whose pid the file holds is gone or
// a zombie.
func assertKilled(t *testing.T, pidFile string) {
	t.Helper()
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("compile never wrote its background pid: %v", err)
	}
	pid := strings.TrimSpace(string(raw))
	eventually(t, 5*time.Second, "the killed build's background process "+pid+" gone", func() error {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			return nil // reaped
		}
		// Field 3 is the state; Z: dead, waiting for its parent to reap it.
		if fields := strings.Fields(string(stat)); len(fields) > 2 && (fields[2] == "Z" || fields[2] == "X") {
			return nil
		}
		return fmt.Errorf("still runs: %s", stat)
	})
}

func TestBuildOnceForConcurrentCallers(t *testing.T) {
	bp := t.TempDir()
	counter := filepath.Join(t.TempDir(), "compiles")
	writeTree(t, bp, map[string]string{
		"bin/detect*": "#!/bin/sh\necho Counting\n",
		// The sleep holds the build open so that every caller joins it.
		"bin/compile*": "#!/bin/sh\necho x >> " + counter + "\nsleep 0.3\n",
	})
	b := newBuilder(t)
	src := app(t, map[string]string{"Procfile": "web: true\n"})
	const callers = 6
	var wg sync.WaitGroup
	results := make([]slug.Slug, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			results[i], errs[i] = b.Build(context.Background(), slug.Request{App: "once", SourceDir: src, Buildpacks: []string{bp}})
		})
	}
	wg.Wait()
	built := 0
	for i := range callers {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if results[i].Key != results[0].Key {
			t.Errorf("caller %d got key %s, caller 0 %s", i, results[i].Key, results[0].Key)
		}
		if !results[i].Cached {
			built++
		}
	}
	raw, _ := os.ReadFile(counter)
	if n := strings.Count(string(raw), "x"); n != 1 || built != 1 {
		t.Errorf("compile ran %d times, %d callers say they built; want 1 and 1", n, built)
	}
}

func TestBuildSourceDigest(t *testing.T) {
	b := newBuilder(t)
	src := app(t, map[string]string{"Procfile": "web: true\n"})
	d1, err := slug.DigestDir(src)
	if err != nil {
		t.Fatal(err)
	}
	// The caller's digest (spec.Source.Digest) is used as given.
	s1 := mustBuild(t, b, slug.Request{App: "d", SourceDir: src, SourceDigest: d1})
	s2 := mustBuild(t, b, slug.Request{App: "d", SourceDir: src, SourceDigest: d1})
	if !s2.Cached || s1.Key != s2.Key {
		t.Error("same digest built twice")
	}
	writeTree(t, src, map[string]string{"new.txt": "x"})
	d2, _ := slug.DigestDir(src)
	if d1 == d2 {
		t.Error("digest ignores a new file")
	}
	if err := os.Chmod(filepath.Join(src, "new.txt"), 0o755); err != nil {
		t.Fatal(err)
	}
	if d3, _ := slug.DigestDir(src); d3 == d2 {
		t.Error("digest ignores a mode change")
	}
	if s3 := mustBuild(t, b, slug.Request{App: "d", SourceDir: src}); s3.Cached {
		t.Error("changed source reused the slug")
	}
	if _, err := b.Build(context.Background(), slug.Request{App: "../etc", SourceDir: src}); err == nil {
		t.Error("app name with a slash accepted")
	}
	if _, err := b.Build(context.Background(), slug.Request{App: "d", SourceDir: filepath.Join(src, "missing")}); err == nil ||
		!strings.Contains(err.Error(), "build slug for d") {
		t.Errorf("missing source: %v", err)
	}
}
