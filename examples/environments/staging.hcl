# staging: one dyno of each, the base specs as they are.
environment "staging" {
  app "hello" {
    config = { GREETING = "hello from staging" }
  }
}
