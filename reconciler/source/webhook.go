package source

import (
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
)

// MaxWebhookBytes bounds a webhook body; GitHub caps push payloads at 25 MB, but a
// trigger only needs the ref, and a config repo's pushes are small.
const MaxWebhookBytes = 1 << 20

// WebhookHandler serves `POST /hooks/git`: a push notification from GitHub
// (X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>), GitLab
// (X-Gitlab-Token: <secret>) or Gitea/Forgejo (X-Gitea-Signature: <hex HMAC>). With
// an empty secret every request is accepted. It calls trigger, which must not
// block (Source.Trigger does not), with a reason naming the provider, the pushed
// ref and the after-commit when the payload has them.
//
// Responses: 202 triggered; 200 for pings and events other than pushes (nothing
// triggered); 401 bad or missing signature; 405 not POST; 413 body over
// MaxWebhookBytes; 400 a body that is neither JSON nor a GitHub form payload.
func WebhookHandler(secret string, trigger func(reason string)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "method not allowed: use POST", http.StatusMethodNotAllowed)
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
		trigger(reason)
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, reason)
	})
}

// authenticate checks the request against secret and names the provider.
func authenticate(secret string, h http.Header, body []byte) (provider string, ok bool) {
	provider = "generic"
	switch {
	case h.Get("X-GitHub-Event") != "" || h.Get("X-Hub-Signature-256") != "":
		provider = "github"
	case h.Get("X-Gitlab-Event") != "" || h.Get("X-Gitlab-Token") != "":
		provider = "gitlab"
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Gitea-Signature") != "":
		provider = "gitea"
	}
	if secret == "" {
		return provider, true
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	want := mac.Sum(nil)
	if sig, found := strings.CutPrefix(h.Get("X-Hub-Signature-256"), "sha256="); found {
		got, err := hex.DecodeString(sig)
		return "github", err == nil && hmac.Equal(got, want)
	}
	if sig := h.Get("X-Gitea-Signature"); sig != "" {
		got, err := hex.DecodeString(sig)
		return "gitea", err == nil && hmac.Equal(got, want)
	}
	if token := h.Get("X-Gitlab-Token"); token != "" {
		return "gitlab", subtle.ConstantTimeCompare([]byte(token), []byte(secret)) == 1
	}
	return provider, false
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
