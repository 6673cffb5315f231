"""lgd serve: the web front end (JSON API now; pages next) over pipelines.service."""
