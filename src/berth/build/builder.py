"""The builder: a Dockerfile and its context to an image, step by step, as Docker's classic builder does.

Each instruction is a step whose result is an image (an untagged child of the previous one): RUN runs a
container through the engine (StepRunner) and commits its snapshot as a layer; COPY and ADD write into a fresh
snapshot mounted on the host and commit it; metadata steps commit the new config with an `empty_layer` history
entry. A step whose parent, instruction text (build args expanded) and source checksum match an earlier step is
a cache hit (BuildCache) and reuses that image. Multi-stage builds run their stages in order up to --target;
only the last stage's image is tagged. A failing step leaves no container and no snapshot behind; the images
of the steps that succeeded stay, as Docker keeps them, for the cache.

Progress goes to a callback as Docker's JSON-lines items ({"stream": ...}, {"aux": {"ID": ...}}).
May import: berth.build, berth.images, berth.snapshots, berth.content, berth.runtime.users, berth.oci,
berth.util, berth.errors. Never the engine (StepRunner is the seam).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from berth.build.cache import BuildCache, cache_key
from berth.build.commit import ImageWriter, StepImage, scratch
from berth.build.context import Tree
from berth.build.executor import BaseImages, BuildCancelled, RunStep, StepFailed, StepRunner
from berth.build.instructions import Dispatcher, StageState
from berth.build.intake import Context
from berth.build.plan import Plan, Stage, plan_build
from berth.errors import BerthError, InvalidArgument, NotFound
from berth.oci.descriptor import Platform
from berth.oci.digest import Digest
from berth.oci.reference import Reference

Emit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class BuildOptions:
    dockerfile: str = "Dockerfile"
    tags: tuple[Reference, ...] = ()
    build_args: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    target: str = ""
    no_cache: bool = False
    pull: bool = False
    network_mode: str = "default"
    cache_from: tuple[str, ...] = ()
    platform: str = ""
    extra_hosts: tuple[str, ...] = ()
    shm_size: int = 0
    memory: int = 0


@dataclass(frozen=True, slots=True)
class BuildResult:
    image: Digest
    tags: tuple[Reference, ...]


class Builder:
    def __init__(self, writer: ImageWriter, cache: BuildCache, runner: StepRunner, work: Path,
                 bases: BaseImages | None = None, parents: Callable[[Digest], Digest | None] = lambda _: None) -> None:
        self._writer, self._cache, self._runner, self._bases = writer, cache, runner, bases
        self._work = work
        self._parents = parents
        work.mkdir(parents=True, exist_ok=True, mode=0o700)

    def build(self, context: Context, options: BuildOptions, emit: Emit,
              bases: BaseImages | None = None, cancelled: Callable[[], bool] = lambda: False) -> BuildResult:
        """Build; bases pulls images FROM names that are not local (this build's credentials), else the
        builder's own puller, if any."""
        text = _read_dockerfile(context, options.dockerfile)
        plan = plan_build(text, options.target, options.build_args, extra_steps=len(options.labels))
        allowed_cache = self._cache_from_ancestry(options.cache_from) if options.cache_from else None
        session = _Session(self, context, options, plan, emit, allowed_cache, bases or self._bases)
        session.cancelled = cancelled
        image = session.run()
        if image.id is None:
            raise InvalidArgument("No image was generated. Is your Dockerfile empty?")
        unused = sorted(set(options.build_args) - plan.declared_args - set(_PROXY))
        if unused:
            emit({"stream": f"[Warning] One or more build-args [{' '.join(unused)}] were not consumed\n"})
        emit({"aux": {"ID": str(image.id)}})
        emit({"stream": f"Successfully built {image.short_id}\n"})
        if options.tags:
            self._writer.tag(image, options.tags)
            for tag in options.tags:
                emit({"stream": f"Successfully tagged {tag.familiar}\n"})
        return BuildResult(image.id, options.tags)

    def _cache_from_ancestry(self, names: Sequence[str]) -> set[Digest]:
        allowed: set[Digest] = set()
        for name in names:
            try:
                current: Digest | None = self._writer.load(name).id
            except NotFound:
                continue
            while current is not None and current not in allowed:
                allowed.add(current)
                current = self._parents(current)
        return allowed

    # what _Session needs ---------------------------------------------------------------------------------

    @property
    def writer(self) -> ImageWriter:
        return self._writer

    @property
    def cache(self) -> BuildCache:
        return self._cache

    @property
    def runner(self) -> StepRunner:
        return self._runner

    @property
    def bases(self) -> BaseImages | None:
        return self._bases

    @property
    def work(self) -> Path:
        return self._work


DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PROXY = ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy", "NO_PROXY",
          "no_proxy", "ALL_PROXY", "all_proxy")


def _read_dockerfile(context: Context, name: str) -> str:
    rel = name.lstrip("/")
    parts = [p for p in rel.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise InvalidArgument(f"Cannot locate specified Dockerfile: {name}")
    path = context.root.joinpath(*parts)
    # read from the context's index, never materialized; a symlink is not followed for the Dockerfile
    try:
        data = context.read_bytes(path, 16 << 20)
    except OSError:
        raise NotFound(f"Cannot locate specified Dockerfile: {name}") from None
    return data.decode("utf-8", "replace")


class _Session:
    """One build: the stages' states and the step counter."""

    def __init__(self, builder: Builder, context: Context, options: BuildOptions, plan: Plan, emit: Emit,
                 allowed_cache: set[Digest] | None, bases: BaseImages | None) -> None:
        self.builder, self.options, self.plan, self.emit = builder, options, plan, emit
        self.bases = bases
        self.cancelled: Callable[[], bool] = lambda: False
        self.received = context
        self.context = context.root
        self.allowed_cache = allowed_cache
        self.done: dict[int, StepImage] = {}
        self.step = 0
        self.in_triggers = False   # dockerd prints no ' ---> <id>' after each ONBUILD trigger, one after FROM

    def run(self) -> StepImage:
        if self.plan.warnings:   # dockerd writes the parser's warnings to the build's stderr: red stream text
            self.emit({"stream": "\x1b[91m" + "\n".join(self.plan.warnings) + "\n\x1b[0m"})
        for index, instr in enumerate(self.plan.global_args):   # steps of their own, with no ' ---> ' line after
            self.step += 1
            self.emit({"stream": f"Step {self.step}/{self.plan.total_steps} : {instr.original}\n"})
            if self.plan.global_error is not None and self.plan.global_error[0] == index:
                raise InvalidArgument(self.plan.global_error[1])
        image: StepImage | None = None
        for stage in self.plan.stages:
            image = self._stage(stage)
            self.done[stage.index] = image
        assert image is not None
        return image

    def stage_image(self, ref: str) -> StepImage | None:
        """A finished stage by name or index (COPY --from, FROM <stage>)."""
        for stage in self.plan.stages:
            if stage.index in self.done and (stage.name == ref.lower() or str(stage.index) == ref):
                return self.done[stage.index]
        return None

    def _stage(self, stage: Stage) -> StepImage:
        self.step += 1
        self.emit({"stream": f"Step {self.step}/{self.plan.total_steps} : {stage.from_text}\n"})
        if stage.error:
            raise InvalidArgument(stage.error)
        base = self._base(stage)
        config = replace(base.config.config, on_build=())
        if not any(e.startswith("PATH=") for e in config.env):   # Docker's beginStage adds the default PATH
            config = config.with_env("PATH", DEFAULT_PATH)
        state = StageState(base, config, self.plan.args_for(stage),
                           escape=self.plan.escape)
        dispatcher = Dispatcher(self, state)
        if base.config.config.on_build:
            self.in_triggers = True
            try:
                dispatcher.run_triggers(base.config.config.on_build)
            finally:
                self.in_triggers = False
        # after the triggers, as dockerd: the stage's image once FROM (and its triggers) are done
        self.emit({"stream": f" ---> {state.image.short_id}\n" if state.image.id is not None else " ---> \n"})
        for instr in stage.instructions:
            if self.cancelled():
                raise BuildCancelled("the client went away: the build stopped")
            self.step += 1
            self.emit({"stream": f"Step {self.step}/{self.plan.total_steps} : {instr.original}\n"})
            dispatcher.dispatch(instr)
        if stage.is_last:   # --label: one LABEL step per label, sorted, as dockerd 20.10's classic builder adds them
            for key, value in sorted(self.options.labels.items()):
                self.step += 1
                self.emit({"stream": f"Step {self.step}/{self.plan.total_steps} : LABEL {key}={value}\n"})
                dispatcher.label_step({key: value})
        return state.image

    def _base(self, stage: Stage) -> StepImage:
        try:
            return self._find_base(stage)
        except BerthError as exc:
            try:
                wrapped = type(exc)(f"FROM {stage.base}: {exc} (Dockerfile line {stage.from_line})")
            except TypeError:   # a subclass with its own constructor
                raise exc from None
            raise wrapped from exc

    def _find_base(self, stage: Stage) -> StepImage:
        name = stage.base
        if name.lower() == "scratch":
            return scratch(Platform.parse(self.options.platform) if self.options.platform else None)
        earlier = self.stage_image(name) if stage.base_is_stage else None
        if earlier is not None:
            return earlier
        platform = stage.platform or self.options.platform
        if self.options.pull and self.bases is not None:
            self.bases.pull(name, platform, self.emit)
        try:
            return self.builder.writer.load(name)
        except NotFound:
            if self.bases is None or self.options.pull:
                raise
        self.bases.pull(name, platform, self.emit)
        return self.builder.writer.load(name)

    @property
    def writer(self) -> ImageWriter:
        return self.builder.writer

    @property
    def work(self) -> Path:
        return self.builder.work

    def materialize(self, paths: Sequence[Path]) -> None:
        self.received.materialize(paths)

    def digest_of(self, path: Path) -> str | None:
        return self.received.digest_of(path)

    @property
    def tree(self) -> Tree:
        return self.received

    def external_image(self, name: str) -> StepImage:
        """COPY --from=<image>: a local image, pulled when missing."""
        try:
            return self.builder.writer.load(name)
        except NotFound:
            if self.bases is None:
                raise
        self.bases.pull(name, self.options.platform, self.emit)
        return self.builder.writer.load(name)

    # step machinery used by the dispatcher ---------------------------------------------------------------

    def cached(self, parent: StepImage, text: str, checksum: str = "") -> StepImage | None:
        if self.options.no_cache:
            return None
        found = self.builder.cache.lookup(cache_key(parent.id, text, checksum))
        if found is None or (self.allowed_cache is not None and found not in self.allowed_cache):
            return None
        try:
            image = self.builder.writer.by_id(found)
        except NotFound:
            return None
        self.emit({"stream": " ---> Using cache\n"})
        if not self.in_triggers:
            self.emit({"stream": f" ---> {image.short_id}\n"})
        return image

    def remember(self, parent: StepImage, text: str, image: StepImage, checksum: str = "") -> None:
        assert image.id is not None
        self.builder.cache.store(cache_key(parent.id, text, checksum), image.id)
        if not self.in_triggers:
            self.emit({"stream": f" ---> {image.short_id}\n"})

    @contextlib.contextmanager
    def snapshot(self, parent: StepImage) -> Iterator[tuple[str, Path]]:
        """A snapshot key above parent, mounted at a temporary directory for the duration; yields
        (key, mountpoint). The caller commits the key after the block; on an error it is removed."""
        key = "build-" + secrets.token_hex(8)
        self.builder.writer.prepare(key, parent)
        mnt = Path(tempfile.mkdtemp(prefix="mnt-", dir=self.builder.work))
        try:
            try:
                self.builder.writer.mounted(key, mnt)
                try:
                    yield key, mnt
                finally:
                    self.builder.writer.unmount(mnt)
            finally:
                shutil.rmtree(mnt, ignore_errors=True)
        except BaseException:
            self.builder.writer.discard(key)
            raise

    def run_container(self, parent: StepImage, args: tuple[str, ...], env: tuple[str, ...]) -> str:
        """Run a RUN step; returns the container id whose snapshot holds its changes (the caller commits
        or discards it, then calls finish_container)."""
        assert parent.id is not None
        cfg = parent.config.config
        step = RunStep(parent.id, args, env, cfg.working_dir, cfg.user, self.options.network_mode or "default",
                       self.options.extra_hosts, self.options.shm_size, self.options.memory)
        outcome = self.builder.runner.run(
            step, lambda cid: self.emit({"stream": f" ---> Running in {cid[:12]}\n"}),
            lambda data: self.emit({"stream": data.decode("utf-8", "replace")}), self.cancelled)
        if outcome.exit_code != 0:
            self.finish_container(outcome.container_id)
            raise StepFailed(f"The command '{' '.join(args)}' returned a non-zero code: {outcome.exit_code}",
                             outcome.exit_code)
        return outcome.container_id

    def finish_container(self, container_id: str) -> None:
        self.emit({"stream": f"Removing intermediate container {container_id[:12]}\n"})
        self.builder.runner.remove(container_id)


__all__ = ["Builder", "BuildOptions", "BuildResult", "StepFailed"]
