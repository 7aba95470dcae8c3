// Package source is where desired state comes from: a git repository followed by
// branch or tag (cloned through fluxcd's gogit client, polled with jitter and poked
// by webhooks), a local folder watched with fsnotify, and trees read straight from
// git objects for `manifold plan --base --head`.
package source
