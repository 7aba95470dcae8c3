package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/manifold-paas/manifold/drivers"
	"github.com/manifold-paas/manifold/reconciler/api"
	"github.com/manifold-paas/manifold/reconciler/api/tokens"
	"github.com/manifold-paas/manifold/reconciler/dashboard"
	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/reconciler/notify"
	"github.com/manifold-paas/manifold/reconciler/source"
)

// defaultStateDir is where `up` keeps its state and the CLI looks for the socket.
const defaultStateDir = ".manifold"

// dynoProcesses is what a driver whose dynos are local processes tells the socket
// (process.Driver): whether a peer's pid is one of them, so that it is refused.
type dynoProcesses interface {
	IsDynoProcess(pid int) bool
}

// listener is one of the daemon's HTTP listeners.
type listener struct {
	name, url string
	ln        net.Listener
	srv       *http.Server
	cert, key string // TLS when set
}

// controlPlane is the daemon's API (the socket, and --api) and its webhook.
type controlPlane struct {
	tokens    *tokens.Store
	listeners []listener
	// loginURL is the dashboard's one-click login (--dashboard-login), else "".
	loginURL string
}

// checkListeners refuses addresses that would expose the API or the webhook
// unprotected, before anything is opened, and reads the webhook's secret.
func checkListeners(o upOptions) (webhookSecret string, err error) {
	if o.apiAddr != "" && !api.Loopback(o.apiAddr) && (o.apiCert == "" || o.apiKey == "") {
		return "", fmt.Errorf("--api %s is not a loopback address: give --api-tls-cert and --api-tls-key, so that tokens never cross the network in clear", o.apiAddr)
	}
	if (o.apiCert == "") != (o.apiKey == "") {
		return "", errors.New("--api-tls-cert and --api-tls-key go together")
	}
	if o.webhookSecret != "" {
		data, err := os.ReadFile(o.webhookSecret)
		if err != nil {
			return "", fmt.Errorf("--webhook-secret-file: %w", err)
		}
		if webhookSecret = strings.TrimSpace(string(data)); webhookSecret == "" {
			return "", fmt.Errorf("--webhook-secret-file %s is empty", o.webhookSecret)
		}
	}
	if o.webhookAddr != "" && !api.Loopback(o.webhookAddr) && webhookSecret == "" {
		return "", fmt.Errorf("--webhook %s is not a loopback address: give --webhook-secret-file, the secret your forge signs its deliveries with", o.webhookAddr)
	}
	return webhookSecret, nil
}

// openControlPlane opens the token file and every listener (o passed checkListeners).
// apiOpts is the API's options but the token store, which is opened here.
// dashOpts, when its Daemon is set, serves the dashboard at / of the --api listener.
func openControlPlane(o upOptions, secret, stateDir string, apiOpts api.Options, dashOpts dashboard.Options,
	driver drivers.Driver, trigger func(reason string), notifier *notify.Notifier, figures *metrics.Metrics) (_ *controlPlane, err error) {
	logger := apiOpts.Logger
	cp := &controlPlane{}
	defer func() {
		if err != nil {
			cp.close()
		}
	}()
	if cp.tokens, err = tokens.Open(filepath.Join(stateDir, "tokens.db")); err != nil {
		return nil, err
	}
	apiOpts.Tokens = cp.tokens
	handler := api.Handler(apiOpts)

	socketPath := filepath.Join(stateDir, api.SocketName)
	socket, err := api.ListenSocket(socketPath)
	if err != nil {
		return nil, err
	}
	var refuse api.PeerFilter
	if dynos, ok := driver.(dynoProcesses); ok {
		refuse = func(p api.Peer) string {
			if p.PID > 0 && dynos.IsDynoProcess(p.PID) {
				return "the peer is a dyno's process"
			}
			return ""
		}
	}
	cp.listeners = append(cp.listeners, listener{name: "api", url: "unix://" + socketPath,
		ln: api.LocalListener(socket, refuse, logger), srv: &http.Server{Handler: handler, ConnContext: api.ConnContext}})

	if o.apiAddr != "" {
		ln, err := net.Listen("tcp", o.apiAddr)
		if err != nil {
			return nil, fmt.Errorf("api: %w", err)
		}
		scheme := "http"
		if o.apiCert != "" {
			scheme = "https"
		}
		cp.listeners = append(cp.listeners, listener{name: "api", url: scheme + "://" + ln.Addr().String() + " (bearer tokens)",
			ln: ln, srv: &http.Server{Handler: handler}, cert: o.apiCert, key: o.apiKey})
		if dashOpts.Daemon != nil {
			// The dashboard shares the listener: /v1/ is the API, the rest its pages.
			dashOpts.Tokens = dashboardTokens{cp.tokens}
			dash, err := dashboard.New(dashOpts)
			if err != nil {
				return nil, fmt.Errorf("dashboard: %w", err)
			}
			mux := http.NewServeMux()
			mux.Handle("/v1/", handler)
			mux.Handle("/", dash)
			last := &cp.listeners[len(cp.listeners)-1]
			last.srv.Handler = mux
			base := scheme + "://" + ln.Addr().String()
			cp.listeners = append(cp.listeners, listener{name: "dashboard", url: base + "/"})
			if o.dashboardLogin {
				if cp.loginURL, err = dashboardLogin(cp.tokens, base); err != nil {
					return nil, err
				}
			}
		}
	}
	if o.webhookAddr != "" {
		ln, err := net.Listen("tcp", o.webhookAddr)
		if err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/hooks/git", figures.CountWebhooks(notify.RejectedWebhooks(source.NewWebhook(source.WebhookOptions{Secret: secret, Trigger: trigger}), notifier)))
		cp.listeners = append(cp.listeners, listener{name: "webhook", url: "http://" + ln.Addr().String() + "/hooks/git",
			ln: ln, srv: &http.Server{Handler: mux}})
	}
	for i := range cp.listeners {
		if cp.listeners[i].srv == nil {
			continue
		}
		cp.listeners[i].srv.ReadHeaderTimeout = 10 * time.Second
		cp.listeners[i].srv.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelWarn)
	}
	return cp, nil
}

// serve serves every listener in group until ctx ends. Requests end with the daemon:
// a `logs --tail` or `run` would otherwise hold the shutdown until its timeout.
func (cp *controlPlane) serve(ctx context.Context, group *errgroup.Group) {
	for _, l := range cp.listeners {
		if l.srv == nil {
			continue // the dashboard, served by the api listener
		}
		l.srv.BaseContext = func(net.Listener) context.Context { return ctx }
		group.Go(func() error {
			var err error
			if l.cert != "" {
				err = l.srv.ServeTLS(l.ln, l.cert, l.key)
			} else {
				err = l.srv.Serve(l.ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("%s %s: %w", l.name, l.url, err)
			}
			return nil
		})
		group.Go(func() error {
			<-ctx.Done()
			shutdown, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return l.srv.Shutdown(shutdown)
		})
	}
}

// addrs names each listener for the welcome text.
func (cp *controlPlane) addrs() [][2]string {
	out := make([][2]string, 0, len(cp.listeners))
	for _, l := range cp.listeners {
		url := l.url
		if l.name == "dashboard" && cp.loginURL != "" {
			url = cp.loginURL
		}
		out = append(out, [2]string{l.name, url})
	}
	return out
}

// close closes the listeners (removing the socket) and the token file.
func (cp *controlPlane) close() {
	for _, l := range cp.listeners {
		if l.ln != nil {
			l.ln.Close()
		}
	}
	if cp.tokens != nil {
		cp.tokens.Close()
	}
}
