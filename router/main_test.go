package router

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"testing"
)

// benchBackendEnv makes the test binary serve as the trivial dyno of the wrk
// comparison, in its own process, on the address the variable names.
const benchBackendEnv = "MANIFOLD_ROUTER_BENCH_BACKEND"

func TestMain(m *testing.M) {
	if addr := os.Getenv(benchBackendEnv); addr != "" {
		os.Exit(serveTrivialBackend(addr))
	}
	os.Exit(m.Run())
}

// serveTrivialBackend answers "ok" to every request until killed.
func serveTrivialBackend(addr string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench backend:", err)
		return 1
	}
	ok := []byte("ok")
	err = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(ok)
	}))
	fmt.Fprintln(os.Stderr, "bench backend:", err)
	return 1
}
