# Platform settings for this config repo.
domain_suffix = "localhost"
default_size  = "standard-1x"
default_stack = "manifold-24"

# Where builds download Go modules from (default: the daemon's own `go env`). These
# say where dependencies come from, not what is built: they never change a slug key.
# build_env = { GOPROXY = "https://proxy.golang.org,direct", GOPRIVATE = "git.example.com" }

# How many releases' slugs each app and environment keeps for rollback; older slugs
# are collected (manifold gc). Default 20.
keep_releases = 20
