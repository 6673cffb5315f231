"""A hand-written corpus of adversarial pages for `lgd reconcile` (see README.md)."""
