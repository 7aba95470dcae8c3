// Command hello is manifold's example app: `hello web` serves $GREETING on $PORT,
// `hello worker` logs a line every few seconds. Both stop cleanly on SIGTERM, which is
// how a dyno is asked to stop.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	mode := "web"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	var err error
	switch mode {
	case "web":
		err = web(ctx)
	case "worker":
		err = worker(ctx)
	default:
		err = fmt.Errorf("unknown mode %q (want web or worker)", mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

func web(ctx context.Context) error {
	port := os.Getenv("PORT")
	if port == "" {
		port = "5000"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		greeting := os.Getenv("GREETING")
		if greeting == "" {
			greeting = "hello"
		}
		fmt.Fprintf(w, "%s from %s\n", greeting, os.Getenv("DYNO"))
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("listening on :%s", port)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Printf("SIGTERM: draining connections")
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func worker(ctx context.Context) error {
	tick := time.NewTicker(3 * time.Second)
	defer tick.Stop()
	for n := 1; ; n++ {
		select {
		case <-ctx.Done():
			log.Printf("SIGTERM: worker stopping after %d jobs", n-1)
			return nil
		case <-tick.C:
			log.Printf("worker %s: job %d done", os.Getenv("DYNO"), n)
		}
	}
}
