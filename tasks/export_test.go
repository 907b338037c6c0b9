package tasks

// ScriptsWaiting is how many of c's scripts wait for a round trip to share.
func ScriptsWaiting(c *Client) int { return c.combiner.Waiting() }
