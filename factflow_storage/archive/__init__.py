"""Archive jobs, the server side of a bulk download.

``service.ArchiveJobs`` (prepare, status, download, delete) over ``jobs`` (records in
storage), ``request`` (what to pack), ``worker`` (packing, into ``zipformat.zipwriter``),
``limits`` and ``pipe``. The client side is ``factflow_storage.download``.
"""
