package reconciler_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/drivers/process"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/plan/plantest"
	"github.com/manifold-paas/manifold/reconciler/secret"
	"github.com/manifold-paas/manifold/spec"
)

// TestSecretWithoutIdentity: a daemon without an age identity cannot open an app's
// secret; the deploy stalls naming where the secret is written and why, nothing is
// appended to the ledger, and the running dyno keeps serving untouched.
func TestSecretWithoutIdentity(t *testing.T) {
	t.Parallel()
	env := newDriverEnv(t, reconciler.Options{}, func(ctx context.Context, state string, sink drivers.LogSink) (drivers.Driver, error) {
		return process.New(ctx, process.Options{StateDir: filepath.Join(state, "dynos"), Logs: sink, BootTimeout: 20 * time.Second})
	})
	base := env.load()
	env.reconcile()
	before := env.observe()

	sealed, err := secret.Seal(secret.Binding{App: "hello", Env: "default", Name: "TOKEN"}, "value", []string{plantest.Recipient})
	if err != nil {
		t.Fatal(err)
	}
	withSecret := base
	withSecret.Secrets = map[string]spec.Secret{"TOKEN": {Sealed: sealed}}
	env.writeApp(withSecret)
	env.source.commit(fmt.Sprintf("%040d", 99), "alice@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = env.rec.Reconcile(ctx, "")

	status := env.rec.Status().Apps
	if len(status) != 1 || status[0].State != reconciler.StateStalled ||
		!strings.Contains(status[0].Reason, "environments/default.hcl:5:15: secret TOKEN does not open: no age identity") {
		t.Fatalf("status %+v", status)
	}
	after := env.observe()
	if got := before.diff(after); len(got) != 0 {
		t.Errorf("a deploy whose secret does not open did %v", got)
	}
}
