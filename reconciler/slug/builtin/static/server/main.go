// Command static-server serves a folder of files on $PORT: the web process of the
// built-in static buildpack, which compiles it into each static slug so that a static
// site needs nothing from the stack (no busybox, no nginx). It stops cleanly on
// SIGTERM, finishing the requests in flight.
package main

import (
	"context"
	"errors"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	root := "public"
	if len(os.Args) > 1 {
		root = os.Args[1]
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	srv := &http.Server{Addr: ":" + port, Handler: http.FileServer(http.Dir(root)), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("serving %s on :%s", root, port)
	select {
	case err := <-errc:
		log.Fatal(err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
