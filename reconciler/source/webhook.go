package source

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/time/rate"
)

// MaxWebhookBytes bounds a webhook body; GitHub caps push payloads at 25 MB, but a
// trigger only needs the ref, and a config repo's pushes are small.
const MaxWebhookBytes = 1 << 20

// WebhookOptions configure NewWebhook.
type WebhookOptions struct {
	// Secret is the shared secret; empty accepts every request (only for a listener
	// on a loopback address: `manifold up` refuses any other without one).
	Secret string
	// Trigger is called for an authentic push; it must not block (Source.Trigger
	// does not). The payload only names the reason: a trigger fetches the repo as
	// configured, whatever the payload says.
	Trigger func(reason string)
	// Limiter bounds requests of every caller together: over it the answer is 429.
	// Nil: DefaultWebhookRate, DefaultWebhookBurst.
	Limiter *rate.Limiter
	// Deliveries is how many delivery ids are remembered, so that a redelivery is
	// answered 200 and triggers nothing. 0: DefaultWebhookDeliveries.
	Deliveries int
}

// Defaults of WebhookOptions: a forge sends a push's deliveries one by one; a burst
// above this is not a forge.
const (
	DefaultWebhookRate       = rate.Limit(2) // requests per second
	DefaultWebhookBurst      = 20
	DefaultWebhookDeliveries = 1024
)

// WebhookHandler is NewWebhook with the default limits.
func WebhookHandler(secret string, trigger func(reason string)) http.Handler {
	return NewWebhook(WebhookOptions{Secret: secret, Trigger: trigger})
}

// NewWebhook serves `POST /hooks/git`: a push notification from GitHub
// (X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>), GitLab
// (X-Gitlab-Token: <secret>) or Gitea/Forgejo (X-Gitea-Signature: <hex HMAC>), each
// checked in constant time. It calls Trigger with a reason naming the provider, the
// pushed ref and the after-commit when the payload has them.
//
// Responses: 202 triggered; 200 for pings, events other than pushes and repeated
// delivery ids (nothing triggered); 401 bad or missing signature; 405 not POST; 413
// body over MaxWebhookBytes; 429 over the rate limit; 400 a body that is neither JSON
// nor a GitHub form payload.
func NewWebhook(opts WebhookOptions) http.Handler {
	limiter := opts.Limiter
	if limiter == nil {
		limiter = rate.NewLimiter(DefaultWebhookRate, DefaultWebhookBurst)
	}
	seen := newDeliveries(cmp.Or(opts.Deliveries, DefaultWebhookDeliveries))
	secret := []byte(opts.Secret)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
			return
		}
		if !limiter.Allow() {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "too many webhook requests", http.StatusTooManyRequests)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxWebhookBytes))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				http.Error(w, fmt.Sprintf("payload larger than %d bytes", MaxWebhookBytes), http.StatusRequestEntityTooLarge)
				return
			}
			http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
			return
		}
		provider, ok := authenticate(secret, r.Header, body)
		if !ok {
			http.Error(w, "invalid or missing webhook signature", http.StatusUnauthorized)
			return
		}
		if id := deliveryID(r.Header); id != "" && !seen.add(id) {
			fmt.Fprintf(w, "delivery %s already seen: ignored\n", id)
			return
		}
		event := r.Header.Get("X-GitHub-Event")
		if event == "" {
			event = r.Header.Get("X-Gitlab-Event")
		}
		if event == "" {
			event = r.Header.Get("X-Gitea-Event")
		}
		switch strings.ToLower(event) {
		case "ping":
			fmt.Fprintln(w, "pong")
			return
		case "", "push", "push hook", "tag push hook", "system hook":
		default:
			fmt.Fprintf(w, "ignored event %q\n", event)
			return
		}
		push, err := parsePush(r.Header.Get("Content-Type"), body)
		if err != nil {
			http.Error(w, "invalid payload: "+err.Error(), http.StatusBadRequest)
			return
		}
		reason := "webhook (" + provider + ")"
		if push.Ref != "" {
			reason += " push " + push.Ref
		}
		if after := push.after(); after != "" {
			if len(after) > 7 {
				after = after[:7]
			}
			reason += " " + after
		}
		opts.Trigger(reason)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, reason)
	})
}

// authenticate checks the request against secret and names the provider. The first
// signature header present decides; an empty secret accepts everything.
func authenticate(secret []byte, h http.Header, body []byte) (provider string, ok bool) {
	provider = "generic"
	switch {
	case h.Get("X-GitHub-Event") != "" || h.Get("X-Hub-Signature-256") != "":
		provider = "github"
	case h.Get("X-Gitlab-Event") != "" || h.Get("X-Gitlab-Token") != "":
		provider = "gitlab"
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Gitea-Signature") != "":
		provider = "gitea"
	}
	if len(secret) == 0 {
		return provider, true
	}
	sig, err := parseSignature(h)
	if err != nil {
		return provider, false
	}
	switch sig.kind {
	case sigHMAC:
		mac := hmac.New(sha256.New, secret)
		mac.Write(body)
		return sig.provider, hmac.Equal(sig.mac, mac.Sum(nil))
	default:
		// Digests of both, so that the comparison's time does not depend on the
		// secret's length either.
		got, want := sha256.Sum256(sig.token), sha256.Sum256(secret)
		return sig.provider, subtle.ConstantTimeCompare(got[:], want[:]) == 1
	}
}

type sigKind int

const (
	sigHMAC  sigKind = iota // HMAC-SHA256 of the body (GitHub, Gitea)
	sigToken                // the secret itself (GitLab)
)

// signature is what a request's headers claim.
type signature struct {
	provider string
	kind     sigKind
	mac      []byte // sigHMAC: 32 bytes
	token    []byte // sigToken
}

var errNoSignature = errors.New("no signature header")

// parseSignature reads the first signature header present: X-Hub-Signature-256
// ("sha256=" and 64 hex digits), X-Gitea-Signature (64 hex digits) or X-Gitlab-Token.
func parseSignature(h http.Header) (signature, error) {
	if v := h.Get("X-Hub-Signature-256"); v != "" {
		hexMAC, found := strings.CutPrefix(v, "sha256=")
		if !found {
			return signature{}, errors.New("X-Hub-Signature-256: want sha256=<hex>")
		}
		mac, err := decodeMAC(hexMAC)
		return signature{provider: "github", kind: sigHMAC, mac: mac}, err
	}
	if v := h.Get("X-Gitea-Signature"); v != "" {
		mac, err := decodeMAC(v)
		return signature{provider: "gitea", kind: sigHMAC, mac: mac}, err
	}
	if v := h.Get("X-Gitlab-Token"); v != "" {
		return signature{provider: "gitlab", kind: sigToken, token: []byte(v)}, nil
	}
	return signature{}, errNoSignature
}

func decodeMAC(hexMAC string) ([]byte, error) {
	if len(hexMAC) != 2*sha256.Size {
		return nil, fmt.Errorf("signature: want %d hex digits, got %d characters", 2*sha256.Size, len(hexMAC))
	}
	mac, err := hex.DecodeString(hexMAC)
	if err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	return mac, nil
}

// deliveryID is the forge's id of this delivery (a redelivery repeats it).
func deliveryID(h http.Header) string {
	for _, name := range []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "X-Gitlab-Event-UUID"} {
		if id := h.Get(name); id != "" {
			if len(id) > 128 {
				id = id[:128]
			}
			return name + ":" + id
		}
	}
	return ""
}

// deliveries remembers the newest ids, oldest forgotten first.
type deliveries struct {
	mu    sync.Mutex
	ids   map[string]struct{}
	order []string
	next  int
}

func newDeliveries(size int) *deliveries {
	return &deliveries{ids: make(map[string]struct{}, size), order: make([]string, size)}
}

// add records id and reports whether it is new.
func (d *deliveries) add(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ids[id]; ok {
		return false
	}
	if old := d.order[d.next]; old != "" {
		delete(d.ids, old)
	}
	d.order[d.next] = id
	d.next = (d.next + 1) % len(d.order)
	d.ids[id] = struct{}{}
	return true
}

// pushPayload holds the fields GitHub, GitLab and Gitea push payloads share.
type pushPayload struct {
	Ref         string `json:"ref"`
	After       string `json:"after"`
	CheckoutSHA string `json:"checkout_sha"` // GitLab; null for branch deletions
}

func (p pushPayload) after() string {
	if p.CheckoutSHA != "" {
		return p.CheckoutSHA
	}
	return p.After
}

// parsePush reads a JSON payload, or GitHub's form encoding (payload=<json>). An
// empty body is a bare trigger.
func parsePush(contentType string, body []byte) (pushPayload, error) {
	var p pushPayload
	if len(strings.TrimSpace(string(body))) == 0 {
		return p, nil
	}
	if mt, _, err := mime.ParseMediaType(contentType); err == nil && mt == "application/x-www-form-urlencoded" {
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return p, fmt.Errorf("form body: %w", err)
		}
		body = []byte(form.Get("payload"))
	}
	if err := json.Unmarshal(body, &p); err != nil {
		return p, fmt.Errorf("JSON body: %w", err)
	}
	return p, nil
}
