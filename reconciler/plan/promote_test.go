package plan_test

import (
	"strings"
	"testing"

	"github.com/manifold-paas/manifold/reconciler/plan"
	"github.com/manifold-paas/manifold/spec"
)

// TestPromoteLine: a promotion is one line per app, in text and markdown, whatever
// was there before (a pinned slug, or a build from source).
func TestPromoteLine(t *testing.T) {
	t.Parallel()
	aa, bb := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64)
	tests := []struct {
		name       string
		before     *spec.ReleasePin
		after      *spec.ReleasePin
		text, mark string
	}{
		{
			name: "repin", before: &spec.ReleasePin{Slug: aa, From: "staging v41"}, after: &spec.ReleasePin{Slug: bb, From: "staging v42"},
			text: "    ~ promote hello: sha256:aaaaaaaaaaaa… → sha256:bbbbbbbbbbbb… (staging v42)  [new release]\n",
			mark: "| hello | ~ promote hello | sha256:aaaaaaaaaaaa… | sha256:bbbbbbbbbbbb… (staging v42) | **new release** |\n",
		},
		{
			name: "first pin", after: &spec.ReleasePin{Slug: bb, From: "staging v42"},
			text: "    + promote hello: built from source → sha256:bbbbbbbbbbbb… (staging v42)  [new release]\n",
			mark: "| hello | + promote hello | built from source | sha256:bbbbbbbbbbbb… (staging v42) | **new release** |\n",
		},
		{
			name: "unpin", before: &spec.ReleasePin{Slug: aa, From: "staging v41"},
			text: "    - promote hello: sha256:aaaaaaaaaaaa… → built from source  [new release]\n",
			mark: "| hello | - promote hello | sha256:aaaaaaaaaaaa… | built from source | **new release** |\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			observed, desired := helloApp("production"), helloApp("production")
			observed.Pin, desired.Pin = tt.before, tt.after
			p := plan.Diff([]spec.App{desired}, []spec.App{observed})
			if len(p.Changes) != 1 || p.Changes[0].Kind != plan.KindPromote {
				t.Fatalf("changes = %+v, want one promotion", p.Changes)
			}
			var text, mark strings.Builder
			if err := p.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			if err := p.WriteMarkdown(&mark); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(text.String(), tt.text) {
				t.Errorf("text plan lacks %q:\n%s", tt.text, text.String())
			}
			if !strings.Contains(mark.String(), tt.mark) {
				t.Errorf("markdown plan lacks %q:\n%s", tt.mark, mark.String())
			}
		})
	}
	// A new From over the same slug is for people: nothing to do.
	observed, desired := helloApp("production"), helloApp("production")
	observed.Pin, desired.Pin = &spec.ReleasePin{Slug: aa, From: "staging v1"}, &spec.ReleasePin{Slug: aa, From: "staging v2"}
	if p := plan.Diff([]spec.App{desired}, []spec.App{observed}); p.HasChanges() {
		t.Errorf("a new From over the same slug was planned: %+v", p.Changes)
	}
}
