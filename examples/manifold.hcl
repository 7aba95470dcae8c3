# Platform settings for this config repo.
domain_suffix = "localhost"
default_size  = "standard-1x"
default_stack = "manifold-24"
