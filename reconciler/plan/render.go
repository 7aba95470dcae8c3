package plan

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// maxCellWidth keeps markdown tables readable in a pull request without scrolling
// sideways; longer values are cut with an ellipsis.
const maxCellWidth = 48

// WriteText prints the plan for a terminal.
func (p Plan) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, env := range p.Envs {
		changes := p.ForEnv(env.Env).Changes
		fmt.Fprintf(&b, "Environment %s\n", env.Env)
		if len(changes) == 0 {
			b.WriteString("  no changes\n")
		}
		app := ""
		for _, c := range changes {
			if c.App != app {
				app = c.App
				fmt.Fprintf(&b, "  app %s\n", app)
			}
			fmt.Fprintf(&b, "    %s %s", c.symbol(), c.subject())
			if detail := c.detail(); detail != "" {
				fmt.Fprintf(&b, ": %s", detail)
			}
			fmt.Fprintf(&b, "  [%s]\n", c.EffectString())
		}
		fmt.Fprintf(&b, "  %s\n\n", env.formationLine("->"))
	}
	b.WriteString(p.summaryLine() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown prints the plan for a pull request comment: a table per environment.
func (p Plan) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## manifold plan\n\n")
	b.WriteString(p.summaryLine() + "\n")
	for _, env := range p.Envs {
		changes := p.ForEnv(env.Env).Changes
		fmt.Fprintf(&b, "\n### %s\n\n", env.Env)
		if len(changes) == 0 {
			b.WriteString("No changes.\n\n")
		} else {
			b.WriteString("| app | change | from | to | effect |\n")
			b.WriteString("| --- | --- | --- | --- | --- |\n")
			for _, c := range changes {
				from, to := c.values()
				effect := mdCell(c.EffectString())
				if c.Release {
					effect = "**" + effect + "**"
				}
				fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n",
					mdCell(c.App), mdCell(c.symbol()+" "+c.subject()), mdCell(from), mdCell(to), effect)
			}
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "Formation: %s\n", env.formationLine("→"))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints the plan for bots: {"changes":[…],"envs":[…]}, documented in
// docs/plan.md.
func (p Plan) WriteJSON(w io.Writer) error {
	if p.Changes == nil {
		p.Changes = []Change{}
	}
	if p.Envs == nil {
		p.Envs = []EnvSummary{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(p)
}

func (p Plan) summaryLine() string {
	if !p.HasChanges() {
		return fmt.Sprintf("No changes in %s.", plural(len(p.Envs), "environment"))
	}
	releases := map[AppKey]bool{}
	envs := map[string]bool{}
	for _, c := range p.Changes {
		envs[c.Env] = true
		if c.Release {
			releases[AppKey{Env: c.Env, App: c.App}] = true
		}
	}
	return fmt.Sprintf("Plan: %s in %s, %s.", plural(len(p.Changes), "change"),
		plural(len(envs), "environment"), plural(len(releases), "new release"))
}

func (e EnvSummary) formationLine(arrow string) string {
	return fmt.Sprintf("%s: %s %s %s", e.Env, e.Before, arrow, e.After)
}

// String is "6 dynos, 5.0 GB".
func (f Formation) String() string {
	return fmt.Sprintf("%s, %.1f GB", plural(f.Dynos, "dyno"), float64(f.MemoryBytes)/(1<<30))
}

func (c Change) symbol() string {
	switch {
	case c.Kind == KindCreateApp || c.From == nil && c.To != nil && !c.Sensitive:
		return "+"
	case c.Kind == KindDestroyApp || c.To == nil && c.From != nil && !c.Sensitive:
		return "-"
	default:
		return "~"
	}
}

// EffectString says what applying the change does, as the plan prints it: "new
// release", "restart web", "scale web", "router", "drains", "suspend", "stop dynos".
func (c Change) EffectString() string {
	switch c.Effect {
	case EffectRelease:
		return "new release"
	case EffectRestart, EffectScale:
		return string(c.Effect) + " " + c.Process
	case EffectStop:
		return "stop dynos"
	case EffectSuspend:
		if c.To == false {
			return "resume"
		}
		return "suspend"
	default:
		return string(c.Effect)
	}
}

func (c Change) subject() string {
	switch c.Kind {
	case KindCreateApp:
		return "create app"
	case KindDestroyApp:
		return "destroy app"
	case KindConfig:
		return "config " + c.Key
	case KindSecret:
		return "secret " + c.Key
	case KindPromote:
		return "promote " + c.App
	case KindScale, KindResize, KindCommand, KindHealthCheck, KindStopTimeout:
		return string(c.Kind) + " " + c.Process
	default:
		return string(c.Kind)
	}
}

// values returns From and To as printed; a sensitive config change shows no value.
func (c Change) values() (from, to string) {
	if c.Sensitive {
		return "(sensitive value changed)", ""
	}
	if c.Kind == KindSecret {
		if c.From != nil && c.To != nil {
			return "(secret changed)", ""
		}
		return valueString(c.From), valueString(c.To)
	}
	if c.Kind == KindPromote {
		return promotedSlug(c.From), promotedSlug(c.To) + originSuffix(c.Origin)
	}
	if fromList, toList, ok := c.lists(); ok {
		// Lists print as what leaves and what comes, so that one new domain does not
		// repeat every domain the app has.
		return strings.Join(without(fromList, toList), ", "), strings.Join(without(toList, fromList), ", ")
	}
	if c.Kind == KindConfig || c.Kind == KindCommand || c.Kind == KindHealthCheck {
		return quoted(c.From), quoted(c.To)
	}
	return valueString(c.From), valueString(c.To)
}

// lists returns From and To of a change between lists (domains, drains, buildpacks).
func (c Change) lists() (from, to []string, ok bool) {
	from, fromOK := c.From.([]string)
	to, toOK := c.To.([]string)
	return from, to, (fromOK || c.From == nil) && (toOK || c.To == nil) && (fromOK || toOK)
}

// without returns the items of list that are not in other.
func without(list, other []string) []string {
	var out []string
	for _, item := range list {
		if !slices.Contains(other, item) {
			out = append(out, item)
		}
	}
	return out
}

func quoted(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return valueString(v)
}

func (c Change) detail() string {
	from, to := c.values()
	switch {
	case c.Kind == KindPromote:
		// One line per app, the same whatever was there: "sha256:aa… → sha256:bb… (staging v42)".
		return from + " → " + to
	case c.Sensitive, c.Kind == KindSecret && c.From != nil && c.To != nil:
		return from
	case from == "" && c.symbol() == "+":
		return to
	case to == "" && c.symbol() == "-":
		return from
	case from == "":
		return "+ " + to
	case to == "":
		return "- " + from
	default:
		return from + " -> " + to
	}
}

// promotedSlug prints a promotion's side: a short slug key, or "built from source"
// for an app that is not pinned (nil).
func promotedSlug(v any) string {
	key, ok := v.(string)
	if !ok || key == "" {
		return "built from source"
	}
	return ShortDigest(key) + "…"
}

func originSuffix(origin string) string {
	if origin == "" {
		return ""
	}
	return " (" + origin + ")"
}

func valueString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case []string:
		return strings.Join(v, ", ")
	default:
		return fmt.Sprint(v)
	}
}

func mdCell(s string) string {
	if len([]rune(s)) > maxCellWidth {
		s = string([]rune(s)[:maxCellWidth-1]) + "…"
	}
	s = strings.ReplaceAll(s, "|", `\|`)
	if s == "" {
		return " "
	}
	return s
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}
