// Package slug builds app sources into slugs with Heroku's buildpack API (bin/detect,
// bin/compile, bin/release) and keeps them in a content-addressed store: a slug's key
// hashes what went into it (source, buildpacks, stack, build-time config), so the same
// inputs are never built twice and promotion between environments reuses the slug.
package slug
