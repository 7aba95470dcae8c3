// Command quotes-web serves a few quotes over HTTP with the chi router; each answer
// carries a request id made with google/uuid. Procfile: `web: quotes-web` (bin/ is on
// the PATH of the dyno).
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"strconv"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
)

var quotes = []string{
	"Clear is better than clever.",
	"A little copying is better than a little dependency.",
	"Don't communicate by sharing memory, share memory by communicating.",
}

func main() {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("X-Quote-Id", uuid.NewString())
			next.ServeHTTP(w, req)
		})
	})
	r.Get("/", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("quotes from " + os.Getenv("DYNO") + ": try /quotes/0\n"))
	})
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	r.Get("/quotes/{n}", func(w http.ResponseWriter, req *http.Request) {
		n, err := strconv.Atoi(chi.URLParam(req, "n"))
		if err != nil || n < 0 || n >= len(quotes) {
			http.NotFound(w, req)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"quote": quotes[n]})
	})
	log.Printf("quotes listening on :%s", os.Getenv("PORT"))
	log.Fatal(http.ListenAndServe(":"+os.Getenv("PORT"), r))
}
