"""Image endpoints: list, inspect, history, tag, delete, load, get (save), create with fromSrc (import), prune."""

from __future__ import annotations

import asyncio
import fnmatch
from pathlib import Path
from typing import BinaryIO, cast

from aiohttp import web

from berth.api import images_json
from berth.api.app import Router, engine_of, json_response, prepare_headers, request_version
from berth.api.params import boolean, check_filters, filters
from berth.api.streams import BodyReader, JsonLines, ResponseWriter, blocking
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.images.service import ImageView, Loaded, bootstrap
from berth.oci.descriptor import Platform
from berth.oci.reference import Reference


def _label_match(view: ImageView, wanted: list[str]) -> bool:
    labels = view.config.config.labels
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _reference_match(view: ImageView, patterns: list[str]) -> bool:
    for tag in view.record.tags:
        ref = Reference.parse(tag)
        for pattern in patterns:
            name, _, want_tag = pattern.partition(":") if "/" not in pattern.rpartition(":")[2] else (pattern, "", "")
            if fnmatch.fnmatchcase(ref.familiar_name, name) and (not want_tag or fnmatch.fnmatchcase(ref.tag,
                                                                                                    want_tag)):
                return True
    return False


async def list_images(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = filters(request)
    check_filters(given, {"dangling", "label", "reference", "before", "since", "until"})
    views = await blocking(engine.images.list_images)
    by_id = {str(v.record.id): v for v in views}
    # an untagged image some other image was built on is an intermediate one: shown only with all=1, and never as
    # dangling (dockerd lists image store heads for dangling=true)
    parents = {v.record.parent for v in views if v.record.parent is not None}
    show_all = boolean(request, "all")

    def created_of(name: str) -> float:
        return engine.images.resolve(name).added

    out = []
    for view in views:
        intermediate = view.record.id in parents and not view.record.tags and not view.record.repo_digests
        if intermediate and (not show_all or "dangling" in given):
            continue
        if "dangling" in given:
            want = given["dangling"][0].lower() in ("true", "1")
            if want != (not view.record.tags):
                continue
        if "label" in given and not _label_match(view, given["label"]):
            continue
        if "reference" in given and not _reference_match(view, given["reference"]):
            continue
        if "before" in given and not view.record.added < created_of(given["before"][0]):
            continue
        if "since" in given and not view.record.added > created_of(given["since"][0]):
            continue
        out.append(images_json.list_item(view, request_version(request)))
    del by_id
    return json_response(out)


def _graph_data(dirs: list[Path]) -> dict[str, str]:
    """overlay2's GraphDriver.Data: the top layer as UpperDir, the ones below as LowerDir."""
    out = {"MergedDir": str(dirs[0].parent / "merged"), "UpperDir": str(dirs[0]),
           "WorkDir": str(dirs[0].parent / "work")}
    if len(dirs) > 1:
        out = {"LowerDir": ":".join(str(d) for d in dirs[1:]), **out}
    return out


async def inspect_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    name = request.match_info["name"]
    try:
        view = await blocking(lambda: engine.images.inspect(name))
    except NotFound as exc:  # dockerd's wording for this endpoint
        raise NotFound(f"no such image: {name}: {exc}") from exc
    raw = engine.images.raw_config(view.record)
    graph = _graph_data(engine.snapshots.lowerdirs(view.chain_ids[-1])) if view.chain_ids else {}
    return json_response(images_json.inspect(view, raw, graph, request_version(request)))


async def image_history(request: web.Request) -> web.Response:
    engine = engine_of(request)
    name = request.match_info["name"]
    rows = await blocking(lambda: engine.images.history(name))
    return json_response(images_json.history(rows))


async def tag_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    repo = request.query.get("repo", "")
    tag = request.query.get("tag", "") or "latest"
    if not repo:
        raise InvalidArgument("repository name must be given: repo=<name>")
    target = Reference.parse(f"{repo}:{tag}")
    await blocking(lambda: engine.images.tag(request.match_info["name"], target))
    engine.events.image("tag", str(engine.images.resolve(str(target)).id), target.familiar)
    return web.Response(status=201)


async def delete_image(request: web.Request) -> web.Response:
    engine = engine_of(request)
    image_id = str(engine.images.resolve(request.match_info["name"]).id)
    events = await blocking(lambda: engine.images.remove(request.match_info["name"], boolean(request, "force"),
                                                          not boolean(request, "noprune")))
    engine.events.image_removals(events, {image_id})
    return json_response([{kind: value} for kind, value in events])


async def _stream_tar(request: web.Request, names: list[str]) -> web.StreamResponse:
    engine = engine_of(request)
    if not names:
        raise InvalidArgument("no image names given: names=<image>")
    for name in names:  # resolve first: a missing image is a 404, not a broken stream
        engine.images.resolve(name)
    resp = web.StreamResponse(headers={"Content-Type": "application/x-tar"})
    prepare_headers(resp)
    await resp.prepare(request)
    writer = ResponseWriter(resp, asyncio.get_running_loop())

    def run() -> None:
        engine.images.save(names, cast(BinaryIO, writer))
        writer.flush()

    await blocking(run)
    for name in names:
        saved = str(engine.images.resolve(name).id)
        engine.events.image("save", saved, saved)
    await resp.write_eof()
    return resp


async def save_images(request: web.Request) -> web.StreamResponse:
    return await _stream_tar(request, request.query.getall("names", []))


async def save_image(request: web.Request) -> web.StreamResponse:
    return await _stream_tar(request, [request.match_info["name"]])


async def _json_stream(request: web.Request) -> tuple[web.StreamResponse, JsonLines]:
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    prepare_headers(resp)
    await resp.prepare(request)
    return resp, JsonLines(resp, asyncio.get_running_loop())


async def load_images(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    loop = asyncio.get_running_loop()
    resp, lines = await _json_stream(request)
    body = cast(BinaryIO, BodyReader(request, loop))

    def report(loaded: Loaded) -> None:
        engine.events.image("load", str(loaded.image_id), str(loaded.image_id))
        for tag in loaded.tags or ():
            lines.send({"stream": f"Loaded image: {tag}\n"})
        if not loaded.tags:
            lines.send({"stream": f"Loaded image ID: {loaded.image_id}\n"})

    try:
        await blocking(lambda: engine.images.load(body, report))
    except BerthError as exc:
        await lines.error(str(exc))
    await resp.write_eof()
    return resp


async def create_image(request: web.Request) -> web.StreamResponse:
    engine = engine_of(request)
    source = request.query.get("fromSrc")
    if source is None:
        from berth.api.distribution import pull_image
        return await pull_image(request)
    if source != "-":
        raise InvalidArgument(f"importing from a URL ({source}) is not supported: download it and import the file")
    repo = request.query.get("repo", "")
    tag = Reference.parse(f"{repo}:{request.query.get('tag') or 'latest'}" if ":" not in repo.rpartition("/")[2]
                          else repo) if repo else None
    changes = request.query.getall("changes", [])
    message = request.query.get("message", "")
    platform_text = request.query.get("platform", "")
    plat = Platform.parse(platform_text) if platform_text else None
    loop = asyncio.get_running_loop()
    body = cast(BinaryIO, BodyReader(request, loop))
    resp, lines = await _json_stream(request)
    try:
        image_id = await blocking(lambda: engine.images.import_rootfs(body, tag, changes, message, "-", plat))
        engine.events.image("import", str(image_id), str(image_id))
        await lines.asend({"status": str(image_id)})
    except BerthError as exc:
        await lines.error(str(exc))
    await resp.write_eof()
    return resp


async def bootstrap_image(request: web.Request) -> web.StreamResponse:
    """berth's extension: POST /berth/images/bootstrap?base=busybox|debian:bookworm[&tag=name:tag]."""
    engine = engine_of(request)
    base = request.query.get("base", "")
    if not base:
        raise InvalidArgument("which base? base=busybox or base=debian:bookworm")
    tag_text = request.query.get("tag", "")
    tag = Reference.parse(tag_text) if tag_text else None
    resp, lines = await _json_stream(request)
    try:
        image_id = await blocking(lambda: bootstrap(
            engine.images, base, engine.config.root / "tmp", tag,
            lambda text: lines.send({"status": text})))
        await lines.asend({"aux": {"ID": str(image_id)}})
        await lines.asend({"status": f"Bootstrapped {tag.familiar if tag else base}: {image_id}"})
    except BerthError as exc:
        await lines.error(str(exc))
    await resp.write_eof()
    return resp


async def prune_images(request: web.Request) -> web.Response:
    engine = engine_of(request)
    given = filters(request)
    check_filters(given, {"dangling", "label", "until"})
    dangling = given.get("dangling", ["true"])[0].lower() in ("true", "1")

    def keep(view: ImageView) -> bool:
        return "label" in given and not _label_match(view, given["label"])

    before = {str(rec.id) for rec in engine.records.all()}
    events, reclaimed = await blocking(lambda: engine.images.prune(all_unused=not dangling, keep=keep))
    engine.events.image_removals(events, before)
    engine.events.emit("image", "prune", "", {"reclaimed": str(reclaimed)})
    return json_response({"ImagesDeleted": [{k: v} for k, v in events] or None, "SpaceReclaimed": reclaimed})


def register(router: Router) -> None:
    router.add("GET", "/images/json", list_images)
    router.add("GET", "/images/get", save_images)
    router.add("POST", "/images/load", load_images)
    router.add("POST", "/images/create", create_image)
    router.add("POST", "/images/prune", prune_images)
    router.add("POST", "/berth/images/bootstrap", bootstrap_image)
    router.add("GET", "/images/{name:.+}/json", inspect_image)
    router.add("GET", "/images/{name:.+}/history", image_history)
    router.add("GET", "/images/{name:.+}/get", save_image)
    router.add("POST", "/images/{name:.+}/tag", tag_image)
    router.add("DELETE", "/images/{name:.+}", delete_image)
