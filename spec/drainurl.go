package spec

import (
	"fmt"
	"net/url"
)

// drainurl.go checks drain URLs (moved out of decode.go, which the 600-line rule
// keeps small).

// checkDrainURL returns what is wrong with a drain URL, or "".
func checkDrainURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("invalid URL %q: %v", raw, unwrapURLError(err))
	}
	switch u.Scheme {
	case "syslog+tcp", "syslog+tls", "https":
	case "":
		return fmt.Sprintf("URL %q has no scheme (supported: syslog+tcp, syslog+tls, https)", raw)
	default:
		return fmt.Sprintf("unsupported URL scheme %q (supported: syslog+tcp, syslog+tls, https)", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Sprintf("URL %q has no host", raw)
	}
	if u.Scheme != "https" && u.Port() == "" {
		return fmt.Sprintf("URL %q needs a port (e.g. %s://%s:6514)", raw, u.Scheme, u.Hostname())
	}
	return ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
