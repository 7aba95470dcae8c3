package reconciler

import (
	"bytes"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/spec"
)

// publish puts one line into the app's log stream.
func (r *Reconciler) publish(app *spec.App, source, dyno, text string) {
	r.opts.Logs.Publish(logs.Line{Time: time.Now(), App: app.Name, Env: app.Env, Source: source, Dyno: dyno, Text: text})
}

// lineWriter turns a byte stream (build output, a one-off's output) into log lines.
type lineWriter struct {
	mu      sync.Mutex
	publish func(text string)
	partial []byte
}

func (r *Reconciler) lineWriter(app *spec.App, source, dyno string) *lineWriter {
	return &lineWriter{publish: func(text string) { r.publish(app, source, dyno, text) }}
}

// Write publishes every complete line; a partial one waits for its newline or Close.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.partial = append(w.partial, p...)
	for {
		i := bytes.IndexByte(w.partial, '\n')
		if i < 0 {
			break
		}
		w.publish(string(bytes.TrimRight(w.partial[:i], "\r")))
		w.partial = w.partial[i+1:]
	}
	return len(p), nil
}

// Close publishes what is left without a newline.
func (w *lineWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.partial) > 0 {
		w.publish(string(w.partial))
		w.partial = nil
	}
	return nil
}
