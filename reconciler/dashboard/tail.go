package dashboard

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/manifold-paas/manifold/logs"
)

// tailReplay is how many recent lines a new tail replays before it follows.
const tailReplay = 100

// tail streams the app's log lines as server-sent events, filtered as `manifold logs
// --ps --source` does, until the page goes away.
func (d *Dashboard) tail(w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	query := r.URL.Query()
	filter := logs.Filter{App: r.PathValue("app"), Env: r.PathValue("env"), Dyno: query.Get("ps"), Source: query.Get("source")}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	for line := range d.opts.Logs.Tail(r.Context(), filter, tailReplay) {
		data, err := json.Marshal(struct {
			Time   string `json:"time"`
			Source string `json:"source"`
			Dyno   string `json:"dyno"`
			Text   string `json:"text"`
		}{line.Time.UTC().Format("15:04:05.000"), line.Source, line.Dyno, line.Text})
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return
		}
		flusher.Flush()
	}
}
