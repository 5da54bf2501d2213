"""Copying executions (or any prefix) from one store to another, provider to provider.

``plan`` decides, before a byte moves, what the destination lacks: objects missing there
or whose checksum differs, keys it cannot hold, an execution id it already holds for
another run. ``run`` then copies objects with their metadata (the destination computes
its own ``key``, ``content_length``, ``checksum`` and ``created_at``; the checksum must
come out equal to the source's), its writes index cross-execution lineage as any write
does, and each execution's record is written last: an interrupted copy leaves an
execution without a record, which no reader takes for complete, and a re-run finishes it.
"""
