"""berth's registry: an OCI distribution spec v1.1 server with a web UI, a separate app (DESIGN.md).

Run it with `python -m berth.registry serve --listen HOST:PORT --root DIR` (or `berth-registry`, or `berth
registry ...` once the CLI dispatches to `berth.registry.__main__.main(argv)`); `gc --root DIR` collects garbage.

Modules: names (URL grammar), manifests (what a pushed manifest references), storage (the storage Protocols and
the filesystem backend over berth.content's BlobStore), uploads (open upload sessions), auth (htpasswd, tokens),
errors (the spec's error codes and statuses), app (the HTTP handlers), ui (the web pages), gc, server, __main__.
May import: berth.content, berth.oci, berth.util, berth.errors, aiohttp. Never the engine, api or images.
"""
