# ticker: a shell worker that logs a line every few seconds.
app "ticker" {
  source { path = "../src/ticker" }
  config = { TICK_SECONDS = "5" }

  process "worker" {
    count = 1
    size  = "basic"
  }
}
