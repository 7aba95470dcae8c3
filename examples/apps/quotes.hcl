# quotes: a Go web app with third-party modules (the chi router, google/uuid),
# downloaded through the module proxy when it builds (manifold.hcl's build_env).
app "quotes" {
  source { path = "../src/quotes" }

  process "web" {
    count        = 1
    health_check = "/healthz"
  }
}
