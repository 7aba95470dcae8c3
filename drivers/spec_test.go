package drivers_test

import (
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/drivers"
)

func TestValidateForContainers(t *testing.T) {
	t.Parallel()
	good := drivers.DynoSpec{App: "hello", Env: "production", Type: "web", Index: 1, Release: 3, SlugPath: "/slugs/a.tgz"}
	if err := good.ValidateForContainers(); err != nil {
		t.Fatalf("a good spec: %v", err)
	}
	if got := good.Ref(); got != "hello/production web.1 (v3)" {
		t.Errorf("Ref = %q", got)
	}
	tests := []struct {
		name   string
		mutate func(*drivers.DynoSpec)
		want   string
	}{
		{"app with a slash", func(s *drivers.DynoSpec) { s.App = "he/llo" }, `app "he/llo": want letters, digits, - and _`},
		{"empty env", func(s *drivers.DynoSpec) { s.Env = "" }, `env "": want letters`},
		{"type starting with a dash", func(s *drivers.DynoSpec) { s.Type = "-web" }, `type "-web"`},
		{"index 0", func(s *drivers.DynoSpec) { s.Index = 0 }, "index 0: want 1 or more"},
		{"no slug", func(s *drivers.DynoSpec) { s.SlugPath = "" }, "no slug path"},
		{"negative memory", func(s *drivers.DynoSpec) { s.MemoryBytes = -1 }, "negative size limits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec := good
			tt.mutate(&spec)
			err := spec.ValidateForContainers()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
		})
	}
}
