"""sql-traits: a self-hosted SQL Traits engine.

Run SQL against your warehouse on a schedule, validate the result, and send only what
changed to Segment-compatible collectors, webhooks and files.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
