package notify

import (
	"fmt"
	"slices"

	"github.com/manifold-paas/manifold/spec"
)

// forge.go turns events into commit statuses of the config repo. One commit deploys
// several apps to one environment, each its own events, while the forge keeps one
// status per context (manifold/<env>): the status sent is the worst over the apps
// seen so far for that commit and environment (failure, then pending, then success),
// so that a later app's success never hides an earlier one's failure.

// Commit status states, as GitHub and Gitea name them.
const (
	statePending = "pending"
	stateSuccess = "success"
	stateFailure = "failure"
)

// maxForgeKeys bounds the commit/environment states kept: older ones are forgotten.
const maxForgeKeys = 256

// forgeStates are the apps' states per receiver, commit and environment. Held in
// memory: after a restart a commit's aggregate starts again from its next event.
type forgeStates struct {
	order  []string
	states map[string]map[string]string // key -> app -> state
}

func newForgeStates() *forgeStates { return &forgeStates{states: map[string]map[string]string{}} }

// isCommit tells a git object id (40 or 64 hex digits) from a folder's revision,
// which no forge knows.
func isCommit(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// entries returns the statuses an event makes for a forge receiver: deploys set
// their environment's; a commit that does not load fails every environment's.
func (f *forgeStates) entries(r receiver, e Event, envs []string) []entry {
	if !isCommit(e.Commit) {
		return nil
	}
	var state string
	switch {
	case e.Type == DeployStarted:
		state = statePending
	case e.Type == DeploySucceeded:
		state = stateSuccess
	case e.Type == DeployFailed:
		state = stateFailure
	case e.Type == SpecInvalid && !e.Resolved:
		var out []entry
		for _, env := range envs {
			out = append(out, entry{Delivery: e.ID + "-" + env, Event: e, State: stateFailure,
				Context: "manifold/" + env, Description: describe("The config repo does not load: " + e.Message)})
		}
		return out
	default:
		return nil
	}
	key := r.ID + "\x00" + e.Commit + "\x00" + e.Env
	apps := f.states[key]
	if apps == nil {
		apps = map[string]string{}
		f.states[key] = apps
		f.order = append(f.order, key)
		if len(f.order) > maxForgeKeys {
			delete(f.states, f.order[0])
			f.order = f.order[1:]
		}
	}
	apps[e.App] = state
	worst := stateSuccess
	var failed, pending []string
	for app, s := range apps {
		switch s {
		case stateFailure:
			failed = append(failed, app)
		case statePending:
			pending = append(pending, app)
		}
	}
	slices.Sort(failed)
	slices.Sort(pending)
	desc := e.Message
	switch {
	case len(failed) > 0:
		worst = stateFailure
		if e.Type != DeployFailed {
			desc = fmt.Sprintf("%s failed; %s", failed, e.Message)
		}
	case len(pending) > 0:
		worst = statePending
	}
	return []entry{{Delivery: e.ID, Event: e, State: worst, Context: "manifold/" + e.Env, Description: describe(desc)}}
}

// describe cuts a description to GitHub's 140 characters.
func describe(s string) string {
	const maxDescription = 140
	if r := []rune(s); len(r) > maxDescription {
		return string(r[:maxDescription-1]) + "…"
	}
	return s
}

// forgeRequest is the body of a commit status, the same for GitHub and Gitea.
type forgeRequest struct {
	State       string `json:"state"`
	TargetURL   string `json:"target_url,omitempty"`
	Description string `json:"description"`
	Context     string `json:"context"`
}

// statusURL is where a commit status is posted.
func statusURL(n spec.Notify, commit string) string {
	return fmt.Sprintf("%s/repos/%s/statuses/%s", trimSlash(n.API), n.Repo, commit)
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
