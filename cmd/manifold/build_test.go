package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runBuild(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newBuildCmd()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs(args)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	err = cmd.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestBuildCommand(t *testing.T) {
	src := filepath.Join(t.TempDir(), "My Shell App")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "Procfile"), []byte("web: sh -c 'echo hi'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	line := regexp.MustCompile(`^sha256:[0-9a-f]{64} [0-9.]+[BKM]\n$`)

	out, errOut, err := runBuild(t, "--state", state, src)
	if err != nil {
		t.Fatalf("first build: %v\n%s", err, errOut)
	}
	if !line.MatchString(out) {
		t.Errorf("first build printed %q", out)
	}
	if !strings.Contains(errOut, "-----> Procfile app detected") || !strings.Contains(errOut, "Building my-shell-app") {
		t.Errorf("build output:\n%s", errOut)
	}
	key := strings.Fields(out)[0]
	tarball := filepath.Join(state, "slugs", strings.TrimPrefix(key, "sha256:")+".tar.gz")
	if _, err := os.Stat(tarball); err != nil {
		t.Errorf("slug not in the store: %v", err)
	}

	again, _, err := runBuild(t, "--state", state, src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(again, key+" ") || !strings.HasSuffix(again, " (cached)\n") {
		t.Errorf("second build printed %q, want %s … (cached)", again, key)
	}
	// A BUILD_ var is a build input: a new slug.
	changed, _, err := runBuild(t, "--state", state, "-c", "BUILD_MODE=fast", src)
	if err != nil || strings.HasPrefix(changed, key) || strings.Contains(changed, "cached") {
		t.Errorf("BUILD_MODE build printed %q, %v", changed, err)
	}
}

func TestBuildCommandErrors(t *testing.T) {
	state := t.TempDir()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.MkdirAll(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"nothing detected", []string{"--state", state, empty}, "build slug for empty: no buildpack detected"},
		{"unknown buildpack", []string{"--state", state, "-b", "cobol", empty}, "buildpack cobol"},
		{"bad config flag", []string{"--state", state, "-c", "NOVALUE", empty}, `--config "NOVALUE"`},
		{"no dir", []string{"--state", state}, "accepts 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := runBuild(t, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error with %q", err, tt.want)
			}
			if out != "" {
				t.Errorf("stdout %q on failure", out)
			}
		})
	}
}
