# hello: a Go web app with a background worker.
app "hello" {
  source { path = "../src/hello" }
  buildpacks = ["go"]

  config = {
    GREETING     = "hello"
    DATABASE_URL = "postgres://hello:secret@db.internal:5432/hello"
  }
  sensitive = ["DATABASE_URL"]

  process "web" {
    count        = 1
    health_check = "/healthz"
  }
  process "worker" {
    count        = 1
    stop_timeout = 10
  }
}
