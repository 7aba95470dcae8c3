package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/manifold-paas/manifold/spec"
)

// Headers of every delivery.
const (
	HeaderDelivery  = "X-Manifold-Delivery"
	HeaderEvent     = "X-Manifold-Event"
	HeaderSignature = "X-Manifold-Signature-256"
)

// errPermanent marks a delivery that retrying cannot fix (a 4xx answer): it is
// dropped, and logged.
var errPermanent = errors.New("rejected by the receiver")

// Run delivers every receiver's queue until ctx ends: one goroutine per receiver,
// in order, each retried with backoff. It also watches Options.Logs and resolves
// quiet conditions.
func (n *Notifier) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if n.opts.Logs != nil {
		wg.Go(func() { n.watchLogs(ctx) })
	}
	workers := map[string]context.CancelFunc{}
	defer func() {
		for _, cancel := range workers {
			cancel()
		}
	}()
	tick := time.NewTicker(n.opts.Tick)
	defer tick.Stop()
	for {
		n.mu.Lock()
		for id, wake := range n.wake {
			if workers[id] == nil {
				wctx, cancel := context.WithCancel(ctx)
				workers[id] = cancel
				wg.Go(func() { n.deliverQueue(wctx, id, wake) })
			}
		}
		for id, cancel := range workers {
			if n.wake[id] == nil {
				cancel()
				delete(workers, id)
			}
		}
		n.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-n.changed:
		case now := <-tick.C:
			n.tick(now)
		}
	}
}

// ackEvery bounds the deliveries acknowledged in memory only: removing each from the
// queue at once would cost an fsync per delivery. After a kill -9, those not yet
// removed are sent again, with the same X-Manifold-Delivery (at least once).
const ackEvery = 64

// deliverQueue sends one receiver's queue, oldest first; the head is retried until it
// is delivered, rejected for good, or older than MaxAge.
func (n *Notifier) deliverQueue(ctx context.Context, id string, wake <-chan struct{}) {
	backoff := time.Duration(0)
	var done uint64 // the newest entry delivered or abandoned
	pending := 0    // of them, not yet removed from the queue
	flush := func() {
		if pending == 0 {
			return
		}
		if err := n.store.removeThrough(id, done); err != nil {
			n.log.Error("remove delivered notifications", "receiver", id, "err", err)
			return
		}
		pending = 0
	}
	defer flush()
	for ctx.Err() == nil {
		e, ok, err := n.store.next(id, done)
		if err != nil {
			n.log.Error("read notification queue", "receiver", id, "err", err)
		}
		if !ok || err != nil {
			flush()
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-time.After(n.opts.MaxBackoff):
			}
			continue
		}
		n.mu.Lock()
		r, known := n.receivers[id]
		unusable := n.unusable[id] != nil
		n.mu.Unlock()
		if !known {
			return
		}
		if unusable {
			// Its key does not open: hold the queue until a Configure wakes us.
			flush()
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			continue
		}
		err = n.send(ctx, r, e)
		switch {
		case err == nil:
			backoff = 0
		case errors.Is(err, errPermanent):
			n.log.Error("notification rejected: dropped", "receiver", id, "event", e.Event.Type, "delivery", e.Delivery, "err", err)
		case time.Since(e.Event.Time) > n.opts.MaxAge:
			n.log.Error("notification undeliverable: dropped", "receiver", id, "event", e.Event.Type,
				"delivery", e.Delivery, "age", time.Since(e.Event.Time).Round(time.Second), "err", err)
		default:
			if ctx.Err() != nil {
				return
			}
			backoff = min(max(2*backoff, n.opts.MinBackoff), n.opts.MaxBackoff)
			n.log.Warn("notification not delivered: retrying", "receiver", id, "event", e.Event.Type,
				"delivery", e.Delivery, "retry_in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		done, pending = e.seq, pending+1
		if pending >= ackEvery {
			flush()
		}
	}
}

// send makes one attempt. Errors never carry the URL (a Slack URL is a credential)
// nor a secret: only the host and the status.
func (n *Notifier) send(ctx context.Context, r receiver, e entry) error {
	cred, err := n.credential(r)
	if err != nil {
		return err
	}
	req, err := request(ctx, r.Notify, e, cred)
	if err != nil {
		return err
	}
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%s %s: %w", req.Method, req.URL.Host, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusRequestTimeout &&
		resp.StatusCode != http.StatusTooManyRequests:
		return fmt.Errorf("%s %s: %s: %w", req.Method, req.URL.Host, resp.Status, errPermanent)
	}
	return fmt.Errorf("%s %s: %s", req.Method, req.URL.Host, resp.Status)
}

// request renders an entry for its receiver's type; cred is its key or token (nil:
// none).
func request(ctx context.Context, nb spec.Notify, e entry, cred []byte) (*http.Request, error) {
	var target string
	var body []byte
	var err error
	header := http.Header{}
	switch nb.Type {
	case spec.NotifyWebhook:
		target = nb.URL
		body, err = json.Marshal(e.Event)
		if err == nil && cred != nil {
			mac := hmac.New(sha256.New, cred)
			mac.Write(body)
			header.Set(HeaderSignature, "sha256="+hex.EncodeToString(mac.Sum(nil)))
		}
	case spec.NotifySlack:
		target = nb.URL
		body, err = json.Marshal(map[string]string{"text": slackText(e.Event)})
	case spec.NotifyGitHubStatus, spec.NotifyGiteaStatus:
		target = statusURL(nb, e.Event.Commit)
		body, err = json.Marshal(forgeRequest{State: e.State, Description: e.Description, Context: e.Context})
		if cred == nil {
			return nil, fmt.Errorf("no token: %w", errPermanent)
		}
		if nb.Type == spec.NotifyGitHubStatus {
			header.Set("Authorization", "Bearer "+string(cred))
			header.Set("Accept", "application/vnd.github+json")
			header.Set("X-GitHub-Api-Version", "2022-11-28")
		} else {
			header.Set("Authorization", "token "+string(cred))
			header.Set("Accept", "application/json")
		}
	default:
		return nil, fmt.Errorf("unknown receiver type %q: %w", nb.Type, errPermanent)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.Event.Type, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("receiver URL: %w", errPermanent)
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "manifold-notify")
	req.Header.Set(HeaderDelivery, e.Delivery)
	req.Header.Set(HeaderEvent, string(e.Event.Type))
	return req, nil
}

// slackText is the one line a chat shows.
func slackText(e Event) string {
	mark := ":information_source:"
	switch {
	case e.Resolved:
		mark = ":white_check_mark:"
	case e.Severity == SeverityError:
		mark = ":rotating_light:"
	}
	text := fmt.Sprintf("%s *%s* %s", mark, e.Type, e.Message)
	if e.Resolved && e.Type != DynoRecovered {
		text = fmt.Sprintf("%s *%s resolved* %s", mark, e.Type, strings.TrimPrefix(e.Message, "Resolved: "))
	}
	if e.Repeats > 0 {
		text += fmt.Sprintf(" (and %d more like it)", e.Repeats)
	}
	return text
}
