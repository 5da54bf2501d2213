"""Operator tools on top of ``StorageService``: sizes (``du``), provenance (``lineage``)
and replay comparison (``diff``). Each works through the service's own methods, so the
CLI, the HTTP API and ``--api`` mode share one implementation."""
