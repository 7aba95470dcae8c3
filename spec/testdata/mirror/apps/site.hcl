# The HCL twin of examples/apps/site.yaml.
app "site" {
  source { path = "../src/site" }
  buildpacks = ["static"]
  process "web" { count = 1 }
}
