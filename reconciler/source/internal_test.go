package source

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestNormalizeURL(t *testing.T) {
	t.Parallel()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ in, want string }{
		{"https://github.com/acme/platform.git", "https://github.com/acme/platform.git"},
		{"ssh://git@github.com/acme/platform.git", "ssh://git@github.com/acme/platform.git"},
		{"git@github.com:acme/platform.git", "ssh://git@github.com/acme/platform.git"},
		{"gitlab.example.com:group/sub/repo", "ssh://gitlab.example.com/group/sub/repo"},
		{"file:///srv/git/platform.git", "file:///srv/git/platform.git"},
		{"/srv/git/platform", "/srv/git/platform"},
		{"relative/repo", filepath.Join(cwd, "relative/repo")},
	}
	for _, tt := range tests {
		got, err := normalizeURL(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("normalizeURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "https://[::1"} {
		if _, err := normalizeURL(bad); err == nil {
			t.Errorf("normalizeURL(%q) accepted", bad)
		}
	}
}

func TestIgnored(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]bool{
		".hello.hcl.swp": true, ".x.swx": true, "hello.hcl~": true, "4913": true,
		".#hello.hcl": true, "#hello.hcl#": true, ".DS_Store": true, ".git": true,
		"hello.hcl": false, "#": false, "Procfile": false, ".gitignore": false, "49130": false,
	} {
		if got := ignored(name); got != want {
			t.Errorf("ignored(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestJitteredStaysWithinTenPercent(t *testing.T) {
	t.Parallel()
	lo, hi := time.Minute, time.Duration(0)
	for range 1000 {
		d := jittered(time.Minute)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 54*time.Second || hi > 66*time.Second {
		t.Errorf("jitter range [%v, %v] exceeds ±10%%", lo, hi)
	}
	if hi-lo < 6*time.Second {
		t.Errorf("jitter range [%v, %v] is too narrow to spread polls", lo, hi)
	}
}

func TestCleanSubPath(t *testing.T) {
	t.Parallel()
	good := map[string]string{"": "", ".": "", "examples": "examples", "a/b/": "a/b", "./a/../b": "b"}
	for in, want := range good {
		if got, err := cleanSubPath(in); err != nil || got != want {
			t.Errorf("cleanSubPath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"..", "../x", "/abs", "a/../../x"} {
		if _, err := cleanSubPath(bad); err == nil {
			t.Errorf("cleanSubPath(%q) accepted", bad)
		}
	}
}
