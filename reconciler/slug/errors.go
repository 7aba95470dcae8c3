package slug

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors a caller decides on with errors.Is; a *BuildError wraps one of them.
var (
	// ErrNoBuildpack: no buildpack was named and no built-in's bin/detect applies, or
	// a named buildpack's bin/detect refused the app.
	ErrNoBuildpack = errors.New("no buildpack detected")
	// ErrCompile: a buildpack's bin/compile (or bin/release) exited non-zero.
	ErrCompile = errors.New("compile failed")
	// ErrTooLarge: the compressed slug is over Builder.SizeLimit.
	ErrTooLarge = errors.New("slug too large")
	// ErrTimeout: the build ran over Builder.TimeLimit and was killed.
	ErrTimeout = errors.New("build timed out")
	// ErrBuildpack: a buildpack could not be fetched or is malformed (no bin/compile, a
	// git ref that does not resolve, an unknown built-in).
	ErrBuildpack = errors.New("bad buildpack")
)

// BuildError is a failed build of one app. Err is one of the sentinels above, possibly
// wrapping the underlying cause; Output holds the last lines of the build's output
// (at most tailLines) when they help (failed compile, timeout).
type BuildError struct {
	App string
	// Buildpack is the buildpack that failed, when one did.
	Buildpack string
	Err       error
	Output    []string
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "build slug for %s: ", e.App)
	if e.Buildpack != "" {
		fmt.Fprintf(&b, "buildpack %s: ", e.Buildpack)
	}
	b.WriteString(e.Err.Error())
	if len(e.Output) > 0 {
		fmt.Fprintf(&b, "\nlast %d lines of build output:", len(e.Output))
		for _, line := range e.Output {
			b.WriteString("\n  ")
			b.WriteString(line)
		}
	}
	return b.String()
}

// Unwrap lets errors.Is see the sentinel.
func (e *BuildError) Unwrap() error { return e.Err }
