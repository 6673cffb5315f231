"""Digitisation at scale: the Celery/Redis queue, its workers and the hot folder (issue 15)."""
