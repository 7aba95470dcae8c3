package notify

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/manifold-paas/manifold/drivers"
)

// Type is an event type. The set is spec.NotifyEventTypes (a test proves it).
type Type string

// The event types.
const (
	DeployStarted   Type = "deploy.started"
	DeploySucceeded Type = "deploy.succeeded"
	// DeployFailed carries Phase: build, release (the release phase) or boot.
	DeployFailed    Type = "deploy.failed"
	Rollback        Type = "rollback"
	DynoCrashed     Type = "dyno.crashed"
	DynoRecovered   Type = "dyno.recovered" // the resolution of dyno.crashed
	DynoMemory      Type = "dyno.memory"    // R14 or R15 (Code)
	RouterErrors    Type = "router.errors"  // an H-code over its threshold (Code)
	DrainDropping   Type = "drain.dropping" // L10: a drain drops lines
	SpecInvalid     Type = "spec.invalid"   // a commit of the config repo does not load
	WebhookRejected Type = "webhook.rejected"
)

// Types lists every event type, in spec.NotifyEventTypes' order.
func Types() []Type {
	return []Type{DeployStarted, DeploySucceeded, DeployFailed, Rollback, DynoCrashed, DynoRecovered,
		DynoMemory, RouterErrors, DrainDropping, SpecInvalid, WebhookRejected}
}

// Severity is info or error; a receiver with severity error gets only error events.
type Severity string

// Severities.
const (
	SeverityInfo  Severity = "info"
	SeverityError Severity = "error"
)

// Phases of a failed deploy.
const (
	PhaseBuild   = "build"
	PhaseRelease = "release"
	PhaseBoot    = "boot"
)

// Event is one thing that happened, as receivers get it (the webhook's JSON body).
type Event struct {
	// ID is the event's stable id: set when the event is accepted, the same in every
	// retry and after a restart; it is the X-Manifold-Delivery header.
	ID       string   `json:"id"`
	Type     Type     `json:"type"`
	Severity Severity `json:"severity"`
	// Key is the dedupe key: repeats of one key within the fold window (5 min) are
	// folded into one event, whose Repeats counts them.
	Key string `json:"key"`
	// Condition, when set, names a state that fires and later clears (a crashed
	// dyno, a router error rate). Resolved marks the clear; Resolves is then the
	// type of the event it clears (dyno.crashed for dyno.recovered).
	Condition string    `json:"condition,omitempty"`
	Resolved  bool      `json:"resolved,omitempty"`
	Resolves  Type      `json:"resolves,omitempty"`
	Time      time.Time `json:"time"`
	// App and Env are empty for events of the whole daemon (spec.invalid,
	// webhook.rejected).
	App     string `json:"app,omitempty"`
	Env     string `json:"env,omitempty"`
	Dyno    string `json:"dyno,omitempty"`
	Release int    `json:"release,omitempty"`
	// Commit is the config repo's commit the event is about (forge statuses).
	Commit string `json:"commit,omitempty"`
	Phase  string `json:"phase,omitempty"`
	// Code is Heroku's error code: R10, R14, R15, H10, H12, L10, …
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
	// Repeats counts the events folded into this one.
	Repeats int `json:"repeats,omitempty"`
}

// filterType is the type a receiver's events and exclude lists are matched against:
// a resolution goes wherever the event it resolves went.
func (e Event) filterType() Type {
	if e.Resolved && e.Resolves != "" {
		return e.Resolves
	}
	return e.Type
}

// newID returns a new event id: time-ordered, then random.
func newID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "evt_" + strconv.FormatInt(now.UnixNano(), 36) + hex.EncodeToString(b[:])
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// DeployStartedEvent: a deploy of app in env began for the config repo's commit.
func DeployStartedEvent(app, env, commit string) Event {
	return Event{Type: DeployStarted, Severity: SeverityInfo, App: app, Env: env, Commit: commit,
		Key:     fmt.Sprintf("deploy.started/%s/%s/%s", app, env, commit),
		Message: fmt.Sprintf("Deploying %s (%s) at %s", app, env, short(commit))}
}

// DeploySucceededEvent: release v of app in env is live.
func DeploySucceededEvent(app, env, commit string, release int) Event {
	return Event{Type: DeploySucceeded, Severity: SeverityInfo, App: app, Env: env, Commit: commit, Release: release,
		Key:     fmt.Sprintf("deploy.succeeded/%s/%s/v%d", app, env, release),
		Message: fmt.Sprintf("Deployed %s (%s) v%d at %s", app, env, release, short(commit))}
}

// DeployFailedEvent: a deploy failed in phase (build, release, boot); release is 0
// when the build failed before one was made. err's text is the message: it names
// what failed, never a config value.
func DeployFailedEvent(app, env, commit string, release int, phase string, err error) Event {
	msg := "unknown error"
	if err != nil {
		msg = err.Error()
	}
	return Event{Type: DeployFailed, Severity: SeverityError, App: app, Env: env, Commit: commit, Release: release, Phase: phase,
		Key:     fmt.Sprintf("deploy.failed/%s/%s/%s/%s", app, env, commit, phase),
		Message: fmt.Sprintf("Deploy of %s (%s) at %s failed (%s): %s", app, env, short(commit), phase, msg)}
}

// RollbackEvent: app in env was rolled back to release `to`, as release v.
func RollbackEvent(app, env string, to, release int, author string) Event {
	return Event{Type: Rollback, Severity: SeverityInfo, App: app, Env: env, Release: release,
		Key:     fmt.Sprintf("rollback/%s/%s/v%d", app, env, release),
		Message: fmt.Sprintf("Rollback of %s (%s) to v%d by %s (v%d)", app, env, to, author, release)}
}

// SpecLoadedEvent is spec.invalid when err is set (the commit does not load), else
// its resolution. With no commit (the repo could not be fetched) it is the zero
// Event, which Notify ignores.
func SpecLoadedEvent(commit string, err error) Event {
	if commit == "" {
		return Event{}
	}
	if err != nil {
		return Event{Type: SpecInvalid, Severity: SeverityError, Commit: commit, Condition: "spec.invalid",
			Key: "spec.invalid/" + commit, Message: err.Error()}
	}
	return Event{Type: SpecInvalid, Severity: SeverityError, Commit: commit, Condition: "spec.invalid",
		Resolved: true, Resolves: SpecInvalid, Key: "spec.invalid/" + commit,
		Message: fmt.Sprintf("The config repo loads again at %s", short(commit))}
}

// WebhookRejectedEvent: a request to the git webhook was refused with status.
func WebhookRejectedEvent(status int, remote string) Event {
	return Event{Type: WebhookRejected, Severity: SeverityInfo, Key: "webhook.rejected/" + strconv.Itoa(status),
		Message: fmt.Sprintf("A git webhook request from %s was rejected (HTTP %d)", remote, status)}
}

// DynoEvents turns a driver's state change into events: a crash (dyno.crashed, and
// dyno.memory for R15), R14 (dyno.memory), a crashed dyno up again (dyno.recovered),
// a dyno stopped by manifold (the resolution of whatever it had). Other changes
// give none.
func DynoEvents(ev drivers.Event) []Event {
	d := ev.Dyno
	app, env, name := d.Spec.App, d.Spec.Env, d.Name
	if app == "" || name == "" || d.Spec.Type == "run" || d.Spec.Type == "release" {
		return nil // one-offs are attached to who ran them
	}
	crash := fmt.Sprintf("dyno.crashed/%s/%s/%s", app, env, name)
	memory := fmt.Sprintf("dyno.memory/%s/%s/%s", app, env, name)
	base := Event{App: app, Env: env, Dyno: name, Release: d.Spec.Release, Code: ev.Code}
	with := func(e Event, typ Type, sev Severity, cond string, msg string) Event {
		e.Type, e.Severity, e.Condition, e.Key, e.Message = typ, sev, cond, cond, msg
		return e
	}
	var out []Event
	switch {
	case ev.Code == "R14" || ev.Code == "R15":
		out = append(out, with(base, DynoMemory, SeverityError, memory,
			fmt.Sprintf("%s of %s (%s): Error %s (%s)", name, app, env, ev.Code, memoryText(ev.Code))))
	}
	switch ev.To {
	case drivers.StateCrashed:
		if ev.From != drivers.StateCrashed {
			reason := d.Reason
			if reason == "" {
				reason = "crashed"
			}
			out = append(out, with(base, DynoCrashed, SeverityError, crash,
				fmt.Sprintf("%s of %s (%s) crashed: %s (restart %d)", name, app, env, reason, d.Restarts)))
		}
	case drivers.StateUp:
		if ev.From != drivers.StateUp {
			e := with(base, DynoRecovered, SeverityError, crash, fmt.Sprintf("%s of %s (%s) is up again", name, app, env))
			e.Resolved, e.Resolves = true, DynoCrashed
			out = append(out, e)
		}
	case drivers.StateDown:
		for _, c := range []struct {
			cond          string
			typ, resolves Type
		}{{crash, DynoRecovered, DynoCrashed}, {memory, DynoMemory, DynoMemory}} {
			e := with(base, c.typ, SeverityError, c.cond, fmt.Sprintf("%s of %s (%s) was stopped by manifold", name, app, env))
			e.Resolved, e.Resolves = true, c.resolves
			out = append(out, e)
		}
	}
	return out
}

func memoryText(code string) string {
	if code == "R15" {
		return "Memory quota vastly exceeded"
	}
	return "Memory quota exceeded"
}
