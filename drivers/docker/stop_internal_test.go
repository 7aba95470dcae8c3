package docker

import (
	"context"
	"errors"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
)

// failingRemover answers ContainerRemove with errs, one a call, then nil.
type failingRemover struct {
	errs  []error
	calls int
}

func (f *failingRemover) ContainerRemove(context.Context, string, container.RemoveOptions) error {
	f.calls++
	if f.calls <= len(f.errs) {
		return f.errs[f.calls-1]
	}
	return nil
}

// TestForceRemoveRetries: a forced removal the engine fails now and then is tried
// again (the engine's transient errors cannot be made to happen on a real engine);
// a container already gone is no error; an engine that keeps failing is given up on.
func TestForceRemoveRetries(t *testing.T) {
	transient := errors.New("cannot remove container: could not kill: tried to kill container, but did not receive an exit event")
	tests := []struct {
		name      string
		errs      []error
		wantErr   bool
		wantCalls int
	}{
		{"removed at once", nil, false, 1},
		{"transient errors, then removed", []error{transient, transient}, false, 3},
		{"already gone", []error{cerrdefs.ErrNotFound}, false, 1},
		{"never removed", []error{transient, transient, transient, transient, transient, transient, transient, transient, transient, transient,
			transient, transient, transient, transient, transient, transient, transient, transient, transient, transient, transient}, true, 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &failingRemover{errs: tt.errs}
			err := forceRemove(context.Background(), f, "c1")
			if (err != nil) != tt.wantErr || f.calls != tt.wantCalls {
				t.Errorf("err %v after %d calls, want error %v after %d", err, f.calls, tt.wantErr, tt.wantCalls)
			}
		})
	}
}
