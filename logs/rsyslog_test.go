package logs_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rsyslogd is Debian's rsyslog (installed by .ci/deps with rsyslog-gnutls).
const rsyslogd = "/usr/sbin/rsyslogd"

// rsyslogField separates the fields rsyslog writes per received message.
const rsyslogField = "|#|"

// received is one message as rsyslog parsed it.
type received struct {
	Hostname, AppName, ProcID, MsgID, Pri, Time, Msg string
}

// rsyslog is a real rsyslogd receiving RFC 5424 over TCP (or TLS) on 127.0.0.1 and
// writing every message, field by field, to a file.
type rsyslog struct {
	t    *testing.T
	dir  string
	conf string
	port int
	out  string
	cmd  *exec.Cmd
	exit chan struct{}
}

// testPKI is a CA and a server certificate for 127.0.0.1, as PEM files.
type testPKI struct {
	CAPEM                     []byte
	CAFile, CertFile, KeyFile string
}

// newPKI writes a fresh CA and a server certificate for 127.0.0.1 into dir.
func newPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "manifold test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pki := testPKI{
		CAPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile:  filepath.Join(dir, "key.pem"),
	}
	writeFile(t, pki.CAFile, pki.CAPEM)
	writeFile(t, pki.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, pki.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	return pki
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRsyslog writes a config into a temp dir and starts rsyslogd on it; with pki,
// imtcp speaks TLS (gtls, anonymous clients). It is stopped at the end of the test.
func startRsyslog(t *testing.T, pki *testPKI) *rsyslog {
	t.Helper()
	if _, err := os.Stat(rsyslogd); err != nil {
		t.Fatalf("rsyslogd missing (run `make deps`): %v", err)
	}
	dir := t.TempDir()
	r := &rsyslog{t: t, dir: dir, conf: filepath.Join(dir, "rsyslog.conf"), port: freePort(t), out: filepath.Join(dir, "received.log")}
	var conf strings.Builder
	fmt.Fprintf(&conf, "global(workDirectory=%q maxMessageSize=\"64k\"", dir)
	if pki != nil {
		fmt.Fprintf(&conf, " DefaultNetstreamDriverCAFile=%q DefaultNetstreamDriverCertFile=%q DefaultNetstreamDriverKeyFile=%q",
			pki.CAFile, pki.CertFile, pki.KeyFile)
	}
	conf.WriteString(")\n")
	if pki != nil {
		conf.WriteString(`module(load="imtcp" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")` + "\n")
	} else {
		conf.WriteString(`module(load="imtcp")` + "\n")
	}
	fields := []string{"%hostname%", "%app-name%", "%procid%", "%msgid%", "%pri%", "%timereported:::date-rfc3339%", "%msg%"}
	fmt.Fprintf(&conf, "template(name=\"fields\" type=\"string\" string=\"%s\\n\")\n", strings.Join(fields, rsyslogField))
	fmt.Fprintf(&conf, "ruleset(name=\"drain\") { action(type=\"omfile\" file=%q template=\"fields\") }\n", r.out)
	fmt.Fprintf(&conf, "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\" ruleset=\"drain\")\n", r.port)
	writeFile(t, r.conf, []byte(conf.String()))
	r.start()
	t.Cleanup(r.stop)
	return r
}

// start runs rsyslogd and waits (bounded) until it accepts connections.
func (r *rsyslog) start() {
	r.t.Helper()
	log, err := os.OpenFile(filepath.Join(r.dir, "rsyslogd.out"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	defer log.Close()
	r.cmd = exec.Command(rsyslogd, "-n", "-f", r.conf, "-i", filepath.Join(r.dir, "rsyslogd.pid"))
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start rsyslogd: %v", err)
	}
	r.exit = make(chan struct{})
	go func(cmd *exec.Cmd, exit chan struct{}) {
		_ = cmd.Wait()
		close(exit)
	}(r.cmd, r.exit)
	eventually(r.t, 20*time.Second, "rsyslogd listening on "+r.addr(), func() error {
		select {
		case <-r.exit:
			out, err := os.ReadFile(filepath.Join(r.dir, "rsyslogd.out"))
			r.t.Fatalf("rsyslogd exited at start: %s (%v)", out, err)
		default:
		}
		conn, err := net.DialTimeout("tcp", r.addr(), time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	})
}

// stop ends rsyslogd (SIGTERM, then SIGKILL after 10s) and waits for it.
func (r *rsyslog) stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exit:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.exit
	}
	r.cmd = nil
}

func (r *rsyslog) addr() string { return fmt.Sprintf("127.0.0.1:%d", r.port) }

// messages returns what rsyslog has written so far; it fails the test on a line
// that does not have every field (a corrupt frame).
func (r *rsyslog) messages() []received {
	r.t.Helper()
	data, err := os.ReadFile(r.out)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	// rsyslog may be caught writing a message: a last line without its newline is not
	// written yet, and is read again on the next call.
	data = data[:bytes.LastIndexByte(data, '\n')+1]
	var out []received
	for _, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, rsyslogField, 7)
		if len(parts) != 7 {
			r.t.Fatalf("rsyslog wrote a malformed message: %q", line)
		}
		out = append(out, received{parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6]})
	}
	return out
}

// waitMessages polls (bounded) until rsyslog has written at least n messages.
func (r *rsyslog) waitMessages(n int) []received {
	r.t.Helper()
	var got []received
	eventually(r.t, 20*time.Second, fmt.Sprintf("rsyslog received %d messages", n), func() error {
		if got = r.messages(); len(got) < n {
			return fmt.Errorf("%d so far", len(got))
		}
		return nil
	})
	return got
}
