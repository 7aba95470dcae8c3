package main

import (
	"path/filepath"
	"testing"
)

// TestAPIAddress: --api, else MANIFOLD_API, else the socket of --state, else
// .manifold/manifold.sock, made absolute.
func TestAPIAddress(t *testing.T) {
	t.Parallel()
	cwd, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  string
		want string
	}{
		{"default", nil, "", "unix://" + filepath.Join(cwd, ".manifold", "manifold.sock")},
		{"state", []string{"--state", "/srv/mf"}, "", "unix:///srv/mf/manifold.sock"},
		{"env over state", []string{"--state", "/srv/mf"}, "https://mf.example:7443", "https://mf.example:7443"},
		{"flag over env", []string{"--api", "unix:///run/mf.sock"}, "https://mf.example:7443", "unix:///run/mf.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := newRootCmd()
			if err := root.PersistentFlags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got := apiAddress(root.PersistentFlags().Lookup("api"), tt.env, root.PersistentFlags().Lookup("state"))
			if got != tt.want {
				t.Errorf("apiAddress(%v, env %q) = %q, want %q", tt.args, tt.env, got, tt.want)
			}
		})
	}
}
