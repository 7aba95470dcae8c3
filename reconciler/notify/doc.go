// Package notify tells people what the daemon does and when something breaks: typed
// events (deploys, crashes, router errors, …), folded and resolved as conditions,
// queued durably in their own bbolt file and delivered in order to each receiver.
package notify
