package swarm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// slugServer serves the slugs of the driver's services to the nodes over HTTP, at
// /slugs/<sha256>: a task fetches its slug at start and checks it against the digest,
// so no registry holds app code. The path is the digest: only who knows a slug's
// sha256 (the service spec) can ask for it. The same listener is the one-offs'
// rendezvous endpoint (rendezvous.go), at /rendezvous/<token>.
type slugServer struct {
	listener net.Listener
	server   *http.Server

	mu    sync.Mutex
	paths map[string]string    // sha256 -> slug tarball on disk
	known map[string]slugStamp // slug path -> its digest, while the file is unchanged
}

// slugStamp is a slug file's digest as of its size and modification time.
type slugStamp struct {
	size    int64
	modTime time.Time
	sha     string
}

func newSlugServer(listener net.Listener, rv *rendezvous) *slugServer {
	s := &slugServer{listener: listener, paths: map[string]string{}, known: map[string]slugStamp{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /slugs/{sha}", s.serveSlug)
	mux.HandleFunc("GET /rendezvous/{token}", rv.serve)
	s.server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return s
}

func (s *slugServer) serve(log *slog.Logger) {
	if err := s.server.Serve(s.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("slug server", "err", err)
	}
}

func (s *slugServer) close() error { return s.server.Close() }

// add makes a slug servable and returns its sha256 (hashed once per file version).
func (s *slugServer) add(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("slug %s: %w", path, err)
	}
	s.mu.Lock()
	stamp, ok := s.known[path]
	s.mu.Unlock()
	if !ok || stamp.size != info.Size() || !stamp.modTime.Equal(info.ModTime()) {
		sha, err := fileSHA256(path)
		if err != nil {
			return "", err
		}
		stamp = slugStamp{size: info.Size(), modTime: info.ModTime(), sha: sha}
	}
	s.mu.Lock()
	s.known[path] = stamp
	s.paths[stamp.sha] = path
	s.mu.Unlock()
	return stamp.sha, nil
}

// register serves an adopted service's slug under the digest its spec names,
// without hashing (a task checks the digest anyway).
func (s *slugServer) register(sha, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.paths[sha]; !ok {
		s.paths[sha] = path
	}
}

func (s *slugServer) serveSlug(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	path, ok := s.paths[r.PathValue("sha")]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/gzip")
	http.ServeFile(w, r, path)
}

// slugBaseURL is the slug server's URL as the nodes reach it: the listener's address,
// or, when it listens on every interface, this machine's address on its route to the
// manager's swarm address (managerAddr): the manager's own address when the daemon
// runs on it, else this machine's on the network it shares with the swarm. Finding
// the route sends nothing.
func slugBaseURL(listen net.Addr, managerAddr string) (string, error) {
	host, port, err := net.SplitHostPort(listen.String())
	if err != nil {
		return "", fmt.Errorf("slug server address %s: %w", listen, err)
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		if managerAddr == "" {
			return "", errors.New("the slug server listens on every interface and the manager names no swarm address: give the URL the nodes reach it by (MANIFOLD_SWARM_SLUG_URL)")
		}
		conn, err := net.Dial("udp", net.JoinHostPort(managerAddr, "2377"))
		if err != nil {
			return "", fmt.Errorf("this machine's address toward the manager %s, for the slug server's URL (or give MANIFOLD_SWARM_SLUG_URL): %w", managerAddr, err)
		}
		host = conn.LocalAddr().(*net.UDPAddr).IP.String()
		_ = conn.Close()
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("slug %s: %w", path, err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash slug %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
