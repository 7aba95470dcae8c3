package spec

import (
	"time"
)

// routererrors.go reads `router_errors { threshold, window }` of manifold.hcl: when
// the router's H errors of an app make the router.errors notification fire.

// Defaults of RouterErrors: 10 errors of one code within a minute.
const (
	DefaultRouterErrorThreshold     = 10
	DefaultRouterErrorWindowSeconds = 60
)

// Bounds of router_errors: a larger threshold or window is a typo, and a window over
// an hour no longer says "now".
const (
	maxRouterErrorThreshold = 100000
	minRouterErrorWindow    = time.Second
	maxRouterErrorWindow    = time.Hour
)

// RouterErrors is when router.errors fires for an app in an environment: Threshold
// or more router errors of one H code (H10, H12, …) within WindowSeconds. It
// resolves after two minutes without one.
type RouterErrors struct {
	// Threshold is how many errors of one code make the alert, 1 to 100000.
	// Default 10.
	Threshold int `json:"threshold"`
	// WindowSeconds is the window they must fall within (`window = "1m"`), 1 s to
	// 1 h, in whole seconds. Default 60.
	WindowSeconds int64 `json:"window_seconds"`
}

type rawRouterErrors struct {
	threshold intField
	window    durationField
}

// routerErrors reads the router_errors block.
func (d *decoder) routerErrors(b block) *rawRouterErrors {
	if b.labelled {
		d.sink.add(b.labelPos, "router_errors block takes no label")
	}
	attrs, _ := d.checkShape(b.body, shape{what: "router_errors", attrs: []string{"threshold", "window"}})
	r := &rawRouterErrors{}
	a, ok := attrs["threshold"]
	r.threshold = d.wholeNumber(a, ok, 1, maxRouterErrorThreshold)
	a, ok = attrs["window"]
	r.window = d.duration(a, ok)
	if f := r.window; f.set {
		switch {
		case f.v < minRouterErrorWindow:
			d.sink.add(f.pos, "window: must be at least %s, got %s", minRouterErrorWindow, f.v)
			r.window = durationField{}
		case f.v > maxRouterErrorWindow:
			d.sink.add(f.pos, "window: must be at most %s, got %s", maxRouterErrorWindow, f.v)
			r.window = durationField{}
		case f.v%time.Second != 0:
			d.sink.add(f.pos, "window: want whole seconds, got %s", f.v)
			r.window = durationField{}
		}
	}
	return r
}
