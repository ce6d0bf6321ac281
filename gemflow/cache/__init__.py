"""Where results live: the result store, the lock file and single-call answers."""
