# The HCL twin of examples/environments/production.yaml.
environment "production" {
  app "hello" {
    process "web" {
      count = 3
      size  = "standard-2x"
    }
    process "worker" { count = 2 }
    domains = ["hello.example.com"]
    config = {
      GREETING     = "hello from production"
      DATABASE_URL = "postgres://hello:secret@db.production.internal:5432/hello"
    }
  }
  app "site" {
    domains = ["www.example.com"]
    process "web" { count = 2 }
  }
}
