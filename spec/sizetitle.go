package spec

import "strings"

// SizeTitle is Heroku's spelling of a size name in `ps` and log lines:
// standard-1x is Standard-1X, performance-m is Performance-M.
func SizeTitle(name string) string {
	parts := strings.Split(name, "-")
	for i, part := range parts {
		switch {
		case part == "":
		case len(part) <= 2:
			parts[i] = strings.ToUpper(part)
		default:
			parts[i] = strings.ToUpper(part[:1]) + part[1:]
		}
	}
	return strings.Join(parts, "-")
}
