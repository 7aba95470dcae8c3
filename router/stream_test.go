package router

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// TestStreamingResponse: the client reads the first chunk while the dyno still holds
// the rest back until the client has it, so buffering in the router would hang.
func TestStreamingResponse(t *testing.T) {
	t.Parallel()
	r := New(testOptions(&sink{}))
	clientGotFirst := make(chan struct{})
	r.Swap(oneApp(0, startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-clientGotFirst:
		case <-time.After(5 * time.Second):
		}
		_, _ = io.WriteString(w, "data: second\n\n")
	}))))
	base := startRouter(t, r)
	req, _ := http.NewRequest(http.MethodGet, base+"/events", nil)
	req.Host = appHost
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	close(clientGotFirst)
	rest, _ := io.ReadAll(br)
	if string(rest) != "\ndata: second\n\n" {
		t.Errorf("rest %q", rest)
	}
}

// TestStreamingRequestBody: the dyno reads the first part of the body before the
// client has sent the rest.
func TestStreamingRequestBody(t *testing.T) {
	t.Parallel()
	r := New(testOptions(&sink{}))
	dynoGotFirst := make(chan struct{})
	r.Swap(oneApp(0, startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		buf := make([]byte, 5)
		if _, err := io.ReadFull(req.Body, buf); err != nil || string(buf) != "first" {
			t.Errorf("dyno read %q, %v", buf, err)
		}
		close(dynoGotFirst)
		rest, _ := io.ReadAll(req.Body)
		_, _ = w.Write(append(buf, rest...))
	}))))
	base := startRouter(t, r)
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, "first")
		select {
		case <-dynoGotFirst:
			_, _ = io.WriteString(pw, "+rest")
			_ = pw.Close()
		case <-time.After(5 * time.Second):
			_ = pw.CloseWithError(io.ErrUnexpectedEOF)
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, base+"/upload", pr)
	req.Host = appHost
	resp, err := newClient().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if string(body) != "first+rest" {
		t.Errorf("echo %q", body)
	}
}

// TestWebSocketEcho upgrades through the router to an echoing dyno.
func TestWebSocketEcho(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	r := New(testOptions(logs))
	r.Swap(oneApp(0, startBackend(t, websocket.Handler(func(c *websocket.Conn) {
		for {
			var msg string
			if websocket.Message.Receive(c, &msg) != nil || websocket.Message.Send(c, msg) != nil {
				return
			}
		}
	}))))
	base := startRouter(t, r)
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cfg, err := websocket.NewConfig("ws://"+appHost+"/ws", "http://"+appHost+"/")
	if err != nil {
		t.Fatal(err)
	}
	ws, err := websocket.NewClient(cfg, conn)
	if err != nil {
		t.Fatalf("upgrade through the router: %v", err)
	}
	for _, msg := range []string{"hello", strings.Repeat("x", 100_000), "bye"} {
		if err := websocket.Message.Send(ws, msg); err != nil {
			t.Fatal(err)
		}
		var got string
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if err := websocket.Message.Receive(ws, &got); err != nil || got != msg {
			t.Fatalf("echo of %d bytes: got %d bytes, %v", len(msg), len(got), err)
		}
	}
	logs.waitLine(t, "at=info", "status=101", `path="/ws"`)
	// An idle WebSocket is closed after IdleTimeout with H15.
	logs.waitLine(t, "code=H15", `path="/ws"`)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var got string
	if err := websocket.Message.Receive(ws, &got); err == nil {
		t.Error("idle WebSocket still open")
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns its paths and
// a pool trusting it.
func writeCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "manifold test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{appHost},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestHTTP2OverTLS serves clients HTTP/2 over TLS while the dyno gets HTTP/1.1 with
// X-Forwarded-Proto https.
func TestHTTP2OverTLS(t *testing.T) {
	t.Parallel()
	logs := &sink{}
	r := New(testOptions(logs))
	rb := &recordingBackend{}
	r.Swap(oneApp(0, startBackend(t, rb)))
	certFile, keyFile, pool := writeCert(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- r.ServeTLS(ctx, ln, certFile, keyFile) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeTLS: %v", err)
		}
	}()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Proxy:             nil,
		ForceAttemptHTTP2: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: appHost},
	}}
	defer client.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, "https://"+ln.Addr().String()+"/secure", nil)
	req.Host = appHost
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(body) != "ok" {
		t.Errorf("got %s %q, want HTTP/2 ok", resp.Proto, body)
	}
	h, _ := rb.last()
	if h.Get("X-Forwarded-Proto") != "https" {
		t.Errorf("X-Forwarded-Proto = %q, want https", h.Get("X-Forwarded-Proto"))
	}
	logs.waitLine(t, "at=info", `path="/secure"`, "protocol=https")
}

// TestServeTLSBadFiles names the files it cannot load.
func TestServeTLSBadFiles(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	missing := filepath.Join(t.TempDir(), "missing.pem")
	err = New(Options{}).ServeTLS(context.Background(), ln, missing, missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("err = %v, want one naming %s", err, missing)
	}
}
