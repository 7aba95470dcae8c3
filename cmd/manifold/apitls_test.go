package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSignedCert writes a certificate for 127.0.0.1 and its key, PEM, into dir.
func selfSignedCert(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "manifold test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "api.pem"), filepath.Join(dir, "api-key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// TestAPIOverTLS: with --api-tls-cert and --api-tls-key the TCP API speaks HTTPS; the
// CLI reaches it with MANIFOLD_API=https://…, MANIFOLD_API_CA and a token.
func TestAPIOverTLS(t *testing.T) {
	repo := t.TempDir()
	if err := os.MkdirAll(filepath.Join(repo, "apps"), 0o755); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	cert, key := selfSignedCert(t, t.TempDir())
	tcpAPI := freeAddr(t)
	startDaemonArgs(t, state, freeAddr(t), "up", "--repo", repo, "--state", state, "--router", "127.0.0.1:0",
		"--api", tcpAPI, "--api-tls-cert", cert, "--api-tls-key", key)
	t.Setenv("MANIFOLD_TOKEN", "")
	var secret string
	eventually(t, 30*time.Second, "a token over the socket", func() error {
		code, out, errOut := runCLI(t, "--state", state, "token", "create", "--name", "ops", "--scope", "read")
		if code != 0 {
			return &cliError{errOut}
		}
		secret = strings.TrimSpace(out)
		return nil
	})
	t.Setenv("MANIFOLD_API", "https://"+tcpAPI)
	t.Setenv("MANIFOLD_TOKEN", secret)
	if code, _, errOut := runCLI(t, "status"); code == 0 || !strings.Contains(errOut, "certificate") {
		t.Errorf("status without the CA: exit %d %q, want a certificate error", code, errOut)
	}
	t.Setenv("MANIFOLD_API_CA", cert)
	if code, out, errOut := runCLI(t, "status"); code != 0 {
		t.Errorf("status over TLS with a token: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := runCLI(t, "--api", "http://"+tcpAPI, "status"); code == 0 {
		t.Errorf("plain HTTP to the TLS listener answered: %q", errOut)
	}
}

type cliError struct{ stderr string }

func (e *cliError) Error() string { return e.stderr }
