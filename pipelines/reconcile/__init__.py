"""Reconcile: decide page by page what of the paper record is already in the coded record.

facts.py reads clinical facts out of text with the shared vocabulary, match.py finds coded
events that cover each entry, decide.py applies the page rules (include unless everything is
covered), run.py is the archive edge, command.py the `lgd reconcile` and `lgd review` commands.
"""

from .run import Reconciliation, ensure_reconciled, reconcile_patient
from .settings import Settings

__all__ = ["Reconciliation", "Settings", "ensure_reconciled", "reconcile_patient"]
