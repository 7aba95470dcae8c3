package logs

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Batch limits of an HTTPS POST, as Heroku's logplex: about 100 KB. A batch goes as
// soon as the previous one is done, so under load batches grow to the limit and a
// quiet stream's line waits for no timer.
const (
	httpsBatchLines = 1000
	httpsBatchBytes = 100 << 10
)

// HTTPSContentType is the Content-Type of HTTPS drain batches.
const HTTPSContentType = "application/logplex-1"

// runHTTPS POSTs batches of octet-counted frames with Heroku's headers. 5xx answers,
// other non-2xx/4xx answers, connection errors and timeouts are retried with back-off
// (the same Logplex-Frame-Id, so a receiver can drop a duplicate); 4xx answers drop
// the batch (counted as Rejected and Dropped): the receiver will not take it later.
func (d *drain) runHTTPS() {
	transport := &http.Transport{
		TLSClientConfig:       d.tls,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          2,
		ResponseHeaderTimeout: d.p.opts.IOTimeout,
		TLSHandshakeTimeout:   d.p.opts.IOTimeout,
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{Transport: transport, Timeout: d.p.opts.IOTimeout}

	var batch []Line
	var body []byte
	for {
		if !d.wait(nil, nil) {
			return
		}
		batch = d.take(batch[:0], httpsBatchLines, httpsBatchBytes)
		body = body[:0]
		for _, line := range batch {
			body = AppendFrame(body, line)
		}
		frameID := newFrameID()
		backoff := firstBackoff
		for {
			status, err := d.post(client, body, len(batch), frameID)
			if d.ctx.Err() != nil {
				return
			}
			if err == nil && status >= 200 && status < 300 {
				d.delivered(batch, true)
				break
			}
			if err == nil && status >= 400 && status < 500 {
				d.p.opts.Logger.Warn("log drain rejected a batch; dropped", "app", d.app, "env", d.env, "drain", d.cfg.Name, "status", status, "lines", len(batch))
				d.delivered(batch, false)
				break
			}
			if err == nil {
				err = fmt.Errorf("POST %s: status %d", d.url.Redacted(), status)
			}
			d.failed(err)
			var ok bool
			if backoff, ok = d.sleep(backoff); !ok {
				return
			}
		}
		clear(batch)
	}
}

// post sends one batch and returns the status code.
func (d *drain) post(client *http.Client, body []byte, count int, frameID string) (int, error) {
	req, err := http.NewRequestWithContext(d.ctx, http.MethodPost, d.url.String(), bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("POST %s: %w", d.url.Redacted(), err)
	}
	req.Header.Set("Content-Type", HTTPSContentType)
	req.Header.Set("Logplex-Msg-Count", strconv.Itoa(count))
	req.Header.Set("Logplex-Frame-Id", frameID)
	req.Header.Set("Logplex-Drain-Token", d.token)
	req.Header.Set("User-Agent", "manifold-logplex")
	resp, err := client.Do(req)
	if err != nil {
		return 0, err // *url.Error names the method and the (redacted) URL
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// newFrameID returns a random Logplex-Frame-Id (32 hex digits).
func newFrameID() string {
	var id [16]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(id[:])
}
