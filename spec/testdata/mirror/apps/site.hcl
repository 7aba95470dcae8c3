# The HCL twin of examples/apps/site.yaml.
app "site" {
  source { path = "../src/site" }
  process "web" { count = 1 }
}
