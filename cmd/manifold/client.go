package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/manifold-paas/manifold/reconciler/api"
)

// apiClient returns a client for the daemon named by --api, else MANIFOLD_API, else
// the socket of --state (default .manifold/manifold.sock). MANIFOLD_TOKEN is its
// bearer token, for a TCP address; MANIFOLD_API_CA a PEM file of the CA that signed
// an https API's certificate, when the system's do not.
func apiClient(cmd *cobra.Command) *api.Client {
	client := api.NewClient(apiAddress(cmd.Flags().Lookup("api"), os.Getenv("MANIFOLD_API"), cmd.Flags().Lookup("state")))
	client.Token = os.Getenv("MANIFOLD_TOKEN")
	if caFile := os.Getenv("MANIFOLD_API_CA"); caFile != "" {
		client.HTTP.Transport = caTransport(caFile)
	}
	return client
}

// caTransport trusts the CA of caFile; a file that cannot be used fails every request
// with the reason (apiClient's callers have no error to return before a request).
func caTransport(caFile string) http.RoundTripper {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return failingTransport{fmt.Errorf("MANIFOLD_API_CA: %w", err)}
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return failingTransport{fmt.Errorf("MANIFOLD_API_CA %s: no PEM certificate in it", caFile)}
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}
}

type failingTransport struct{ err error }

func (f failingTransport) RoundTrip(*http.Request) (*http.Response, error) { return nil, f.err }

// apiAddress picks the daemon's address, as apiClient says.
func apiAddress(apiFlag *pflag.Flag, env string, stateFlag *pflag.Flag) string {
	switch {
	case apiFlag != nil && apiFlag.Changed:
		return apiFlag.Value.String()
	case env != "":
		return env
	}
	state := defaultStateDir
	if stateFlag != nil {
		state = stateFlag.Value.String()
	}
	if abs, err := filepath.Abs(state); err == nil {
		state = abs
	}
	return "unix://" + filepath.Join(state, api.SocketName)
}

// appFlags adds -a/--app and -e/--env, as Heroku's CLI has them.
func appFlags(cmd *cobra.Command, app, env *string) {
	cmd.Flags().StringVarP(app, "app", "a", "", "the app (required)")
	cmd.Flags().StringVarP(env, "env", "e", "", "the environment (may be left out when the app runs in one)")
	_ = cmd.MarkFlagRequired("app")
}

// isTerminal tells whether f is a terminal, for colour.
func isTerminal(f *os.File) bool {
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// ago is Heroku's "~ 3m ago".
func ago(now, then time.Time) string {
	d := now.Sub(then)
	switch {
	case d < time.Minute:
		return "~ " + strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return "~ " + strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return "~ " + strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return "~ " + strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}

// indent indents every line of text by two spaces.
func indent(text string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(text, "\n"), "\n", "\n  ")
}
