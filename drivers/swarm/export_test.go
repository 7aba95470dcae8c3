package swarm

// EventRelists is how many listings the manager's event stream asked for.
func EventRelists(d *Driver) int64 { return d.eventRelists.Load() }
