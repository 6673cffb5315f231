"""The application layer: what a user may do with the archive, the same for the shell and the web.

`lgd` sub-commands and `lgd serve`'s handlers are thin: they parse input, call these functions
with the acting user (`Who`), and render the result. Authorisation lives here (access.py), so
neither front end can do what the other refuses. Errors are pipelines.errors' hierarchy, each
with its exit code and HTTP status.
"""
