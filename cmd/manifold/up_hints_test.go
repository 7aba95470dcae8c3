package main

import (
	"reflect"
	"testing"

	"github.com/manifold-paas/manifold/spec"
)

// TestUpHints: the commands `manifold up` suggests name an app of the loaded repo.
func TestUpHints(t *testing.T) {
	t.Parallel()
	web := func(count int) []spec.Process { return []spec.Process{{Type: "web", Count: count}} }
	tests := []struct {
		name string
		apps []spec.App
		want []string
	}{
		{name: "no apps", want: []string{"status", "plan --live"}},
		{
			name: "first web app by env then name",
			apps: []spec.App{
				{Name: "zeta", Env: "staging", Processes: web(1)},
				{Name: "ticker", Env: "production", Processes: []spec.Process{{Type: "worker", Count: 1}}},
				{Name: "api", Env: "staging", Processes: web(1)},
			},
			want: []string{"status", "ps -a api -e staging", "logs -a api -e staging --tail", "releases -a api -e staging", "plan --live"},
		},
		{
			name: "default env has no -e, a worker-only repo names its worker",
			apps: []spec.App{{Name: "ticker", Env: spec.DefaultEnvironment, Processes: web(0)}},
			want: []string{"status", "ps -a ticker", "logs -a ticker --tail", "releases -a ticker", "plan --live"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := upHints(tt.apps); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("upHints = %q\nwant %q", got, tt.want)
			}
		})
	}
}
