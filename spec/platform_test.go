package spec_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// TestPlatformBuildSettings covers manifold.hcl|yaml's build_env and keep_releases:
// their values, and the diagnostics of bad ones.
func TestPlatformBuildSettings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, text string
		wantEnv          map[string]string
		wantKeep         int
		wantErr          string // a substring of the diagnostics; "" = loads
	}{
		{name: "defaults", file: "manifold.hcl", text: `domain_suffix = "localhost"`, wantKeep: 20},
		{
			name: "hcl", file: "manifold.hcl",
			text:    "build_env = { GOPROXY = \"http://127.0.0.1:3000\", GOPRIVATE = \"git.example.com\" }\nkeep_releases = 5\n",
			wantEnv: map[string]string{"GOPROXY": "http://127.0.0.1:3000", "GOPRIVATE": "git.example.com"}, wantKeep: 5,
		},
		{
			name: "yaml", file: "manifold.yaml",
			text:    "build_env:\n  GOSUMDB: \"off\"\nkeep_releases: 1\n",
			wantEnv: map[string]string{"GOSUMDB": "off"}, wantKeep: 1,
		},
		{name: "unknown var", file: "manifold.hcl", text: `build_env = { PATH = "/tmp" }`, wantErr: "manifold.hcl:1:15: build_env: PATH is not a module download setting"},
		{name: "not a map", file: "manifold.hcl", text: `build_env = "GOPROXY=off"`, wantErr: "want a map of strings"},
		{name: "keep zero", file: "manifold.hcl", text: `keep_releases = 0`, wantErr: "keep_releases: must be at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			desired, diags := spec.Load(repo(t, map[string]string{"apps/a.hcl": appA, tt.file: tt.text}), spec.LoadOptions{})
			if tt.wantErr != "" {
				if diags == nil || !strings.Contains(diags.Error(), tt.wantErr) {
					t.Fatalf("diagnostics %v, want %q", diags, tt.wantErr)
				}
				return
			}
			if diags != nil {
				t.Fatal(diags)
			}
			if !reflect.DeepEqual(desired.Platform.BuildEnv, tt.wantEnv) || desired.Platform.KeepReleases != tt.wantKeep {
				t.Errorf("BuildEnv %v, KeepReleases %d; want %v, %d", desired.Platform.BuildEnv, desired.Platform.KeepReleases, tt.wantEnv, tt.wantKeep)
			}
		})
	}
}
