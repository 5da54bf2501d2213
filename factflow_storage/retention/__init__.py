"""Retention: deleting whole executions without breaking a replay.

``plan`` says what would go and what would break, ``delete`` carries it out (resumable,
recorded), ``prune`` selects by age and status; ``factflow_storage.lineage_index`` (beside
the provider contract, since writers keep it as they write) holds the
cross-execution references that make the lineage check cheap.
"""
