"""Archive jobs, the server side of a bulk download.

``service.ArchiveJobs`` (prepare, status, download, delete; and ``stream``, an archive
packed straight into the answer) over ``jobs`` (records in
storage), ``request`` (what to pack), ``worker`` (packing, into ``zipformat.zipwriter``),
``limits`` and ``pipe``. The client side is ``factflow_storage.download``.
"""
