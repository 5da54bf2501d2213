"""The zip format both sides of a bulk download share: ``zipwriter`` (the server's packer
streams an archive) and ``zipreader`` (the client checks one as it arrives)."""
