// quotes: a Go web app with third-party dependencies, fetched through the module
// proxy at build time. The two lines below are Heroku's Go buildpack conventions.
// +heroku goVersion go1.26
// +heroku install ./cmd/...
module github.com/manifold-paas/examples/quotes

go 1.26

require (
	github.com/go-chi/chi/v5 v5.5.0
	github.com/google/uuid v1.6.0
)
