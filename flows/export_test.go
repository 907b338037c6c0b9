package flows

// SetHook makes s call hook at the named points of an advancement
// ("advanced": after the script, before the enqueue; "enqueue"; "started":
// after the start script); an error (or a panic) stops it there.
func SetHook(s *Store, hook func(point string) error) { s.hook = hook }
