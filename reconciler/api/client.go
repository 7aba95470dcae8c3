package api

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/manifold-paas/manifold/logs"
	"github.com/manifold-paas/manifold/reconciler"
	"github.com/manifold-paas/manifold/reconciler/api/tokens"
	"github.com/manifold-paas/manifold/reconciler/ledger"
	"github.com/manifold-paas/manifold/reconciler/metrics"
	"github.com/manifold-paas/manifold/reconciler/review"
)

// Client talks to a daemon's API.
type Client struct {
	// BaseURL is the API's address: http://127.0.0.1:7070, or http://manifold for a
	// unix socket (HTTP then dials the socket).
	BaseURL string
	HTTP    *http.Client
	// Token is sent as the bearer token when set (a TCP listener needs one; the
	// socket does not).
	Token string
	// where names the daemon in errors: the socket's path or the URL.
	where string
}

// NewClient returns a client for addr: unix:///path/manifold.sock, a URL
// (https://host:port) or host:port (plain HTTP).
func NewClient(addr string) *Client {
	if path, ok := strings.CutPrefix(addr, "unix://"); ok {
		transport := &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			},
		}
		return &Client{BaseURL: "http://manifold", HTTP: &http.Client{Transport: transport}, where: path}
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	base := strings.TrimRight(addr, "/")
	return &Client{BaseURL: base, HTTP: &http.Client{}, where: base}
}

// Status is GET /v1/status.
func (c *Client) Status(ctx context.Context) (reconciler.Status, error) {
	var out reconciler.Status
	return out, c.do(ctx, http.MethodGet, "/v1/status", nil, &out)
}

// Reconcile is POST /v1/reconcile: a pass now, waited for.
func (c *Client) Reconcile(ctx context.Context, app string) (reconciler.Status, error) {
	var out reconciler.Status
	return out, c.do(ctx, http.MethodPost, "/v1/reconcile", map[string]string{"app": app}, &out)
}

// LivePlan is GET /v1/plan: the newest spec against what runs.
func (c *Client) LivePlan(ctx context.Context) (reconciler.LivePlan, error) {
	var out reconciler.LivePlan
	return out, c.do(ctx, http.MethodGet, "/v1/plan", nil, &out)
}

// Ps is GET /v1/apps/{app}/dynos.
func (c *Client) Ps(ctx context.Context, app, env string) (Ps, error) {
	var out Ps
	return out, c.do(ctx, http.MethodGet, appPath(app, "dynos", url.Values{"env": {env}}), nil, &out)
}

// Metrics is GET /v1/apps/{app}/metrics: the app's one-minute figures since (a
// duration back from now, up to 24 h).
func (c *Client) Metrics(ctx context.Context, app, env string, since time.Duration) (metrics.AppHistory, error) {
	var out metrics.AppHistory
	return out, c.do(ctx, http.MethodGet, appPath(app, "metrics", url.Values{"env": {env}, "since": {since.String()}}), nil, &out)
}

// Reviews is GET /v1/review: the review environments (docs/pipelines.md).
func (c *Client) Reviews(ctx context.Context) (review.List, error) {
	var out review.List
	return out, c.do(ctx, http.MethodGet, "/v1/review", nil, &out)
}

// Releases is GET /v1/apps/{app}/releases.
func (c *Client) Releases(ctx context.Context, app, env string) (Releases, error) {
	var out Releases
	return out, c.do(ctx, http.MethodGet, appPath(app, "releases", url.Values{"env": {env}}), nil, &out)
}

// Rollback is POST /v1/apps/{app}/rollback.
func (c *Client) Rollback(ctx context.Context, app string, req RollbackRequest) (ledger.Release, error) {
	var out ledger.Release
	return out, c.do(ctx, http.MethodPost, appPath(app, "rollback", nil), req, &out)
}

// Run is POST /v1/apps/{app}/run: the one-off's output is copied to stdout and stderr
// as it comes, and its exit code returned.
func (c *Client) Run(ctx context.Context, app string, req RunRequest, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	// Ending the request when the run is over also stops the upload of stdin, which may
	// never end by itself (a terminal).
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var resp *http.Response
	var err error
	if stdin == nil {
		resp, err = c.send(ctx, http.MethodPost, appPath(app, "run", nil), req)
	} else {
		query := url.Values{"env": {req.Env}}
		if len(req.Args) > 0 {
			query["arg"] = req.Args
		} else {
			query.Set("command", req.Command)
		}
		if req.TTY {
			query.Set("tty", "1")
			query.Set("rows", strconv.Itoa(req.Rows))
			query.Set("cols", strconv.Itoa(req.Cols))
			query.Set("term", req.Term)
		}
		resp, err = c.sendStream(ctx, http.MethodPost, appPath(app, "run", query), stdin)
	}
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var frame RunFrame
		if err := dec.Decode(&frame); err != nil {
			return 0, fmt.Errorf("run: the connection to the daemon ended before the exit code: %w", err)
		}
		switch {
		case frame.Error != "":
			return 0, errors.New(frame.Error)
		case frame.Exit != nil:
			return *frame.Exit, nil
		case frame.Stream == "stderr":
			_, _ = io.WriteString(stderr, frame.Data)
			_, _ = stderr.Write(frame.Bytes)
		default:
			_, _ = io.WriteString(stdout, frame.Data)
			_, _ = stdout.Write(frame.Bytes)
		}
	}
}

// LogsRequest selects lines for Logs.
type LogsRequest struct {
	Env, Source, Ps string
	Num             int
	Tail            bool
}

// Logs is GET /v1/apps/{app}/logs: each line is handed to fn as it comes; with Tail it
// returns when ctx ends or the daemon closes the stream.
func (c *Client) Logs(ctx context.Context, app string, req LogsRequest, fn func(logs.Line)) error {
	query := url.Values{"env": {req.Env}, "source": {req.Source}, "ps": {req.Ps}, "num": {strconv.Itoa(req.Num)}}
	if req.Tail {
		query.Set("tail", "true")
	}
	resp, err := c.send(ctx, http.MethodGet, appPath(app, "logs", query), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 64<<10), 1<<20)
	for scanner.Scan() {
		var line logs.Line
		if err := json.Unmarshal(scanner.Bytes(), &line); err != nil {
			return fmt.Errorf("logs: bad line from the daemon: %w", err)
		}
		fn(line)
	}
	if err := scanner.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("logs: %w", err)
	}
	return nil
}

func appPath(app, what string, query url.Values) string {
	path := "/v1/apps/" + url.PathEscape(app) + "/" + what
	for k, v := range query {
		if len(v) == 0 || v[0] == "" {
			query.Del(k)
		}
	}
	if len(query) > 0 {
		path += "?" + query.Encode()
	}
	return path
}

func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: bad answer: %w", method, path, err)
	}
	return nil
}

// send makes a request; a non-2xx answer becomes an error carrying the daemon's message.
func (c *Client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		reader = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, reader)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.roundTrip(req, method, path)
}

// sendStream sends body as it comes (chunked), for a one-off's stdin.
func (c *Client) sendStream(ctx context.Context, method, path string, body io.Reader) (*http.Response, error) {
	// Wrapped so that the transport neither sizes it nor closes the caller's reader.
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, io.NopCloser(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/octet-stream")
	return c.roundTrip(req, method, path)
}

// roundTrip sends req; a non-2xx answer becomes an error carrying the daemon's message.
func (c *Client) roundTrip(req *http.Request, method, path string) (*http.Response, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the manifold daemon at %s (is `manifold up` running? set --state, --api or MANIFOLD_API): %w", cmp.Or(c.where, c.BaseURL), err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		var apiErr Error
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(data, &apiErr) == nil && apiErr.Error != "" {
			return nil, errors.New(apiErr.Error)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}

// Tokens is GET /v1/tokens.
func (c *Client) Tokens(ctx context.Context) ([]tokens.Token, error) {
	var out []tokens.Token
	return out, c.do(ctx, http.MethodGet, "/v1/tokens", nil, &out)
}

// CreateToken is POST /v1/tokens: the answer holds the secret, shown only this once.
func (c *Client) CreateToken(ctx context.Context, req TokenRequest) (NewToken, error) {
	var out NewToken
	return out, c.do(ctx, http.MethodPost, "/v1/tokens", req, &out)
}

// RevokeToken is DELETE /v1/tokens/{name}.
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	resp, err := c.send(ctx, http.MethodDelete, "/v1/tokens/"+url.PathEscape(name), nil)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}
