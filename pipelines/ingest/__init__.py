"""Ingest: turn the paths given to `lgd digitise` into digitised, catalogued, indexed documents."""
