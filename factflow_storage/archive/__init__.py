"""Bulk download: archive jobs on the server side, and the output tree and safe
extraction on the client side.

Server: ``service.ArchiveJobs`` (prepare, status, download, delete) over ``jobs`` (records
in storage), ``worker`` (packing) and ``zipwriter``. Client: ``tree`` (where files land),
``zipreader`` and ``extract`` (the archive, checked as it arrives), and ``fetch`` (what
``factflow storage download`` does in either mode).
"""
