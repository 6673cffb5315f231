"""Digitising beyond one machine: Celery tasks on a Redis broker (`lgd worker`), the writer that stores their results (`lgd digitise --queue`), and the hot folder (`lgd watch`)."""
