"""Docker Engine API client: stdlib only, so that `berth images` starts fast.

hosts      where the daemon is (`-H` > BERTH_HOST > DOCKER_HOST > unix:///run/berth/berth.sock)
transport  EngineClient: HTTP/1.1 over AF_UNIX or TCP, version negotiation, JSON, JSON-lines, tar up/download
autostart  start berthd when nobody answers on a socket berth owns

May import: the standard library, berth.errors. Never berth.engine or berth.api (a plain CLI call must not load
the engine), nor aiohttp.
"""
