package swarm

// EventRelists is how many listings were made at once, on the manager's events or
// after the event stream reconnected.
func EventRelists(d *Driver) int64 { return d.eventRelists.Load() }

// EventsSeen is how many of the manager's events asked for a listing.
func EventsSeen(d *Driver) int64 { return d.eventsSeen.Load() }
