"""``factflow storage download`` on the client side: ``fetch`` (plan, then copy directly or
through an archive job), ``extract`` (the archive, checked as it arrives) and ``tree``
(where the files land). It reaches storage only through the ``Service`` interface."""
