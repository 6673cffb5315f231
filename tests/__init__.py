"""lgd test suite (a regular package, so `tests` here wins over any other distribution's top-level `tests`)."""
