"""`make bench`: the stack's speed, measured through its gateway (issue 11; docs/performance.md)."""
