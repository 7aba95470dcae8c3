package plan_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/reconciler/plan/plantest"
	"github.com/manifold-paas/manifold/spec"
)

// TestFieldTablesAreComplete fails when spec.App or spec.Process gains a field that the
// planner's table (and the shared mutations) do not know: such a field could change
// what runs without the plan saying so.
func TestFieldTablesAreComplete(t *testing.T) {
	t.Parallel()
	effects := plan.FieldEffects()
	mutations := map[string]bool{}
	for _, m := range plantest.Mutations() {
		mutations[m.Field] = true
	}
	for prefix, typ := range map[string]reflect.Type{"App.": reflect.TypeFor[spec.App](), "Process.": reflect.TypeFor[spec.Process]()} {
		for field := range typ.Fields() {
			name := prefix + field.Name
			if _, ok := effects[name]; !ok && name != "App.Processes" {
				t.Errorf("%s is not in the plan's field table (reconciler/plan/fields.go)", name)
			}
			if !mutations[name] {
				t.Errorf("%s has no mutation in plantest.Mutations", name)
			}
		}
	}
}

// TestEveryFieldIsPlannedWithItsEffect mutates each field and checks that Diff names
// exactly the field table's effect (nothing for print-only fields), and that the
// release fingerprint changes exactly for the fields whose effect is release.
func TestEveryFieldIsPlannedWithItsEffect(t *testing.T) {
	t.Parallel()
	effects := plan.FieldEffects()
	for _, m := range plantest.Mutations() {
		if m.Mutate == nil {
			continue
		}
		t.Run(m.Field, func(t *testing.T) {
			t.Parallel()
			observed := helloApp("production")
			desired := helloApp("production")
			m.Mutate(&desired)
			p := plan.Diff([]spec.App{desired}, []spec.App{observed})
			var got []plan.Effect
			for _, c := range p.Changes {
				if !slices.Contains(got, c.Effect) {
					got = append(got, c.Effect)
				}
			}
			want := effects[m.Field]
			switch {
			case m.Field == "App.Processes":
				// A new process type with dynos: its command (a release) and its count.
				want = plan.EffectRelease
				if !slices.Equal(got, []plan.Effect{plan.EffectRelease, plan.EffectScale}) {
					t.Errorf("planned effects %v, want [release scale]", got)
				}
			case want == plan.EffectNone:
				if len(got) != 0 {
					t.Errorf("a print-only field was planned: %+v", p.Changes)
				}
			case !slices.Equal(got, []plan.Effect{want}):
				t.Errorf("planned effects %v, want [%s]", got, want)
			}
			changed := plan.Fingerprint(&desired) != plan.Fingerprint(&observed)
			if changed != (want == plan.EffectRelease) {
				t.Errorf("fingerprint changed = %v, but the field's effect is %s", changed, want)
			}
			restarts := plan.Restarts(web(observed), web(desired))
			if restarts != (want == plan.EffectRestart) {
				t.Errorf("Restarts = %v, but the field's effect is %s", restarts, want)
			}
		})
	}
}

func web(app spec.App) spec.Process {
	p, _ := app.Process("web")
	return p
}
