// Package docker runs dynos as Docker containers: one container per dyno, made from a
// stack image with the release's slug at /app (a read-only volume per slug, or a copy),
// on one bridge network per app and environment. It implements drivers.Driver and keeps every fact it needs in
// container labels, so a restarted daemon adopts the containers it left running. Its
// BuildRunner runs the buildpacks of a slug build in offline containers of the same
// stack image.
package docker
