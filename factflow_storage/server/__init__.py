"""The embedded HTTP API: a bottle app (``app.make_app``) served by waitress (``app.serve``)."""
