"""One build stage's instructions, carried out: what each Dockerfile keyword does to the stage's image.

The Dispatcher works on a StageState (the stage's current image, its working config and its build args) through
a Steps object (the build session: cache, snapshots, RUN containers, earlier stages). Every step ends with a new
image: a cache hit, a layer committed from a snapshot, or a config-only child (`empty_layer`).

May import: berth.build, berth.images, berth.snapshots, berth.runtime.users, berth.oci, berth.util, berth.errors.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import posixpath
import secrets
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from berth.build import shellwords
from berth.build.checksum import source_checksum
from berth.build.commit import ImageWriter, StepImage
from berth.build.context import OS_TREE, Tree, resolve_source_entries
from berth.build.copy import ROOT, RootWriter, lookup_owner, parse_chmod
from berth.build.executor import StepFailed
from berth.build.fetch import fetch_url, is_archive, unpack_archive
from berth.build.plan import Instr, parse_trigger
from berth.build.steps import (
    DEFAULT_SHELL,
    ArgScope,
    config_key,
    container_config,
    expansion_env,
    go_list,
    go_quote,
    healthcheck_text,
    nop,
    normalise_port,
    parse_duration_ns,
    run_created_by,
    set_env,
)
from berth.build.upper import drop_mount_points
from berth.errors import BerthError, InvalidArgument
from berth.oci.config import ContainerConfig, Healthcheck


class Steps(Protocol):
    """What the dispatcher needs of the build session."""

    context: Path
    emit: Callable[[dict[str, Any]], None]

    @property
    def work(self) -> Path: ...
    @property
    def writer(self) -> ImageWriter: ...
    def cached(self, parent: StepImage, text: str, checksum: str = "") -> StepImage | None: ...
    def remember(self, parent: StepImage, text: str, image: StepImage, checksum: str = "") -> None: ...
    def snapshot(self, parent: StepImage) -> AbstractContextManager[tuple[str, Path]]: ...
    def run_container(self, parent: StepImage, args: tuple[str, ...], env: tuple[str, ...]) -> str: ...
    def finish_container(self, container_id: str) -> None: ...
    def stage_image(self, ref: str) -> StepImage | None: ...
    def external_image(self, name: str) -> StepImage: ...
    def materialize(self, paths: Sequence[Path]) -> None: ...
    def digest_of(self, path: Path) -> str | None: ...
    @property
    def tree(self) -> Tree: ...


@dataclass(slots=True)
class StageState:
    image: StepImage
    config: ContainerConfig
    args: ArgScope
    cmd_set: bool = False
    author: str | None = None
    escape: str = "\\"


class Dispatcher:
    def __init__(self, steps: Steps, state: StageState) -> None:
        self._s, self._st = steps, state

    # -- entry points --------------------------------------------------------------------------------------

    def dispatch(self, instr: Instr) -> None:
        handler = getattr(self, "_" + instr.keyword.lower(), None)
        if handler is None:
            raise InvalidArgument(f"Unknown instruction: {instr.keyword} (Dockerfile line {instr.line})")
        try:
            handler(instr)
        except BerthError as exc:
            raise _with_line(exc, instr) from exc
        except OSError as exc:
            raise InvalidArgument(f"{instr.keyword} failed: {exc} (Dockerfile line {instr.line})") from exc

    def run_triggers(self, triggers: Sequence[str]) -> None:
        self._s.emit({"stream": f"# Executing {len(triggers)} build trigger{'s' if len(triggers) != 1 else ''}\n"})
        for text in triggers:
            self.dispatch(parse_trigger(text))

    def label_step(self, labels: Mapping[str, str]) -> None:
        """The builder's --label options: one LABEL step at the end of the last stage, as Docker adds it."""
        text = "LABEL " + " ".join(f"{k}={v}" for k, v in labels.items())
        self._meta(text, replace(self._st.config, labels={**self._st.config.labels, **labels}))

    # -- helpers -------------------------------------------------------------------------------------------

    def _vars(self) -> dict[str, str]:
        return expansion_env(self._st.config.env, self._st.args)

    def _expand(self, word: str) -> str:
        return shellwords.expand(word, self._vars(), self._st.escape)

    def _meta(self, text: str, config: ContainerConfig, author: str | None = None) -> None:
        parent = self._st.image
        created_by = nop(text, config.shell)
        key_text = created_by + "\0" + config_key(config)
        hit = self._s.cached(parent, key_text)
        if hit is None:
            self._commit_lines()
            hit = self._s.writer.commit(parent, config, created_by, None, container_config(config, created_by),
                                        author=author if author is not None else self._st.author)
            self._s.remember(parent, key_text, hit)
        self._st.image, self._st.config = hit, hit.config.config

    def _commit_lines(self) -> None:
        """dockerd makes a metadata or WORKDIR step by committing a container it creates and never starts, and
        prints that container's id twice. berth commits the config without a container; it prints the same two
        lines with a fresh id, so the stream has dockerd's shape for the people and tools that read it."""
        cid = secrets.token_hex(6)
        self._s.emit({"stream": f" ---> Running in {cid}\n"})
        self._s.emit({"stream": f"Removing intermediate container {cid}\n"})

    def _shell_or_exec(self, instr: Instr) -> tuple[str, ...]:
        if instr.json_form:
            return tuple(instr.args)
        if not instr.args:
            return ()
        return (*(self._st.config.shell or DEFAULT_SHELL), instr.args[0])

    # -- metadata instructions -----------------------------------------------------------------------------

    def _env(self, instr: Instr) -> None:
        env = self._vars()
        pairs = [(shellwords.expand(k, env, self._st.escape), shellwords.expand(v, env, self._st.escape))
                 for k, v in instr.pairs()]
        config = self._st.config
        for k, v in pairs:
            if not k:
                raise InvalidArgument("ENV names can not be blank")
            config = replace(config, env=set_env(config.env, k, v))
        self._meta("ENV " + " ".join(f"{k}={v}" for k, v in pairs), config)

    def _label(self, instr: Instr) -> None:
        env = self._vars()
        pairs = [(shellwords.expand(k, env, self._st.escape), shellwords.expand(v, env, self._st.escape))
                 for k, v in instr.pairs()]
        if any(not k for k, _ in pairs):
            raise InvalidArgument("LABEL names can not be blank")
        labels = {**self._st.config.labels, **dict(pairs)}
        self._meta("LABEL " + " ".join(f"{k}={v}" for k, v in pairs), replace(self._st.config, labels=labels))

    def _maintainer(self, instr: Instr) -> None:
        self._st.author = _text(instr)
        self._meta("MAINTAINER " + _text(instr), self._st.config, author=_text(instr))

    def _arg(self, instr: Instr) -> None:
        parts = []
        for name, default in instr.arg_pairs():
            value = self._expand(default) if default is not None else None
            if not name:
                raise InvalidArgument("ARG requires a name")
            self._st.args.declare(name, value)
            parts.append(f"{name}={value}" if value is not None else name)
        if not parts:
            raise InvalidArgument("ARG requires exactly one argument")
        self._meta("ARG " + " ".join(parts), self._st.config)

    def _user(self, instr: Instr) -> None:
        user = self._expand(_text(instr))
        self._meta("USER " + user, replace(self._st.config, user=user))

    def _expose(self, instr: Instr) -> None:
        # the one instruction whose words split after expansion (EXPOSE $PORTS with PORTS="80 443": two ports)
        env = self._vars()
        words = [w for a in instr.args for w in shellwords.split_words(a, env, self._st.escape) if w]
        if not words:
            raise InvalidArgument("EXPOSE requires at least one argument")
        ports = set(self._st.config.exposed_ports)
        for w in words:
            ports.update(normalise_port(w))
        self._meta("EXPOSE " + " ".join(sorted(words)), replace(self._st.config, exposed_ports=tuple(sorted(ports))))

    def _volume(self, instr: Instr) -> None:
        vols = [self._expand(v) for v in instr.args]
        if not vols or any(not v.strip() for v in vols):
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes = tuple(sorted(set(self._st.config.volumes) | set(vols)))
        self._meta("VOLUME " + go_list(vols), replace(self._st.config, volumes=volumes))

    def _stopsignal(self, instr: Instr) -> None:
        sig = self._expand(_text(instr))
        self._meta("STOPSIGNAL " + sig, replace(self._st.config, stop_signal=sig))

    def _cmd(self, instr: Instr) -> None:
        cmd = self._shell_or_exec(instr)
        self._st.cmd_set = True
        self._meta("CMD " + go_quote(cmd), replace(self._st.config, cmd=cmd))

    def _entrypoint(self, instr: Instr) -> None:
        entry = self._shell_or_exec(instr)
        config = replace(self._st.config, entrypoint=entry if entry else None)
        if not self._st.cmd_set:   # Docker: a new ENTRYPOINT drops the CMD inherited from the base image
            config = replace(config, cmd=None)
        self._meta("ENTRYPOINT " + go_quote(entry), config)

    def _shell(self, instr: Instr) -> None:
        if not instr.json_form or not instr.args:
            raise InvalidArgument("SHELL requires the arguments to be in JSON form")
        shell = tuple(instr.args)
        self._meta("SHELL " + go_list(shell), replace(self._st.config, shell=shell))

    def _onbuild(self, instr: Instr) -> None:
        trigger = _text(instr).strip()
        keyword = trigger.split(None, 1)[0].upper() if trigger else ""
        if keyword in ("ONBUILD", "FROM", "MAINTAINER"):
            raise InvalidArgument(f"{keyword} isn't allowed as an ONBUILD trigger")
        config = replace(self._st.config, on_build=(*self._st.config.on_build, trigger))
        self._meta("ONBUILD " + trigger, config)

    def _healthcheck(self, instr: Instr) -> None:
        if not instr.args or instr.args[0].upper() not in ("NONE", "CMD"):
            raise InvalidArgument("Unknown type for HEALTHCHECK: expected CMD or NONE")
        if instr.args[0].upper() == "NONE":
            hc = Healthcheck(test=("NONE",))
        else:
            test: tuple[str, ...] = ("CMD", *instr.args[1:]) if instr.json_form else \
                ("CMD-SHELL", " ".join(instr.args[1:]))
            retries = instr.flag("retries") or "0"
            if not retries.isdigit():
                raise InvalidArgument(f"invalid --retries value {retries!r}")
            hc = Healthcheck(test, parse_duration_ns(instr.flag("interval") or "0", "--interval"),
                             parse_duration_ns(instr.flag("timeout") or "0", "--timeout"),
                             parse_duration_ns(instr.flag("start-period") or "0", "--start-period"),
                             parse_duration_ns(instr.flag("start-interval") or "0", "--start-interval"),
                             int(retries))
        self._meta(healthcheck_text(hc), replace(self._st.config, healthcheck=hc))

    # -- filesystem instructions ---------------------------------------------------------------------------

    def _workdir(self, instr: Instr) -> None:
        wd = self._expand(_text(instr))
        if not wd:
            raise InvalidArgument("WORKDIR requires exactly one argument")
        wd = posixpath.normpath(posixpath.join(self._st.config.working_dir or "/", wd))
        config = replace(self._st.config, working_dir=wd)
        parent = self._st.image
        # one space after #(nop): dockerd builds this text apart from the other metadata steps
        created_by = " ".join(self._st.config.shell or DEFAULT_SHELL) + " #(nop) WORKDIR " + wd
        key_text = created_by + "\0" + config_key(config)
        hit = self._s.cached(parent, key_text)
        if hit is None:
            self._commit_lines()
            with self._s.snapshot(parent) as (key, mnt):
                with RootWriter(mnt) as root:
                    os.close(root.make_dirs(wd, ROOT))
            hit = self._commit_snapshot(parent, key, config, created_by)
            self._s.remember(parent, key_text, hit)
        self._st.image, self._st.config = hit, hit.config.config

    def _commit_snapshot(self, parent: StepImage, key: str, config: ContainerConfig, created_by: str) -> StepImage:
        """Commit key as a layer, or as an empty_layer step when it changed nothing (as Docker does)."""
        upper = self._s.writer.upper(key)
        snapshot: str | None = key
        if not any(os.scandir(upper)):
            self._s.writer.discard(key)
            snapshot = None
        return self._s.writer.commit(parent, config, created_by, snapshot, container_config(config, created_by),
                                     author=self._st.author)

    def _run(self, instr: Instr) -> None:
        if instr.flags:   # --mount, --network, --security: BuildKit's; dockerd's classic builder refuses them too
            raise InvalidArgument(f"the --{instr.flags[0][0]} option requires BuildKit, which berth does not "
                                  f"provide: build without it")
        if self._st.image.id is None:
            raise InvalidArgument("cannot RUN in a stage FROM scratch with no files: there is no shell")
        cmd = self._run_command(instr)
        config = self._st.config
        in_scope = self._st.args.for_history(config.env)
        created_by = run_created_by(cmd, in_scope)
        parent = self._st.image
        key_text = created_by + "\0" + config_key(config)
        hit = self._s.cached(parent, key_text)
        if hit is None:
            env = (*config.env, *self._st.args.for_run(config.env))
            cid = self._s.run_container(parent, cmd, env)
            try:
                upper = self._s.writer.upper(cid)
                drop_mount_points(upper, self._s.writer.lowerdirs(parent))
                snapshot: str | None = cid if any(os.scandir(upper)) else None
                hit = self._s.writer.commit(parent, config, created_by, snapshot,
                                            container_config(config, created_by), author=self._st.author)
            finally:
                self._s.finish_container(cid)
            self._s.remember(parent, key_text, hit)
        self._st.image, self._st.config = hit, hit.config.config

    def _run_command(self, instr: Instr) -> tuple[str, ...]:
        if instr.json_form:
            return tuple(instr.args)
        shell = self._st.config.shell or DEFAULT_SHELL
        text = _text(instr)
        if instr.heredocs:
            words = text.split()
            if len(instr.heredocs) == 1 and len(words) == 1 and words[0].startswith("<<"):
                script = instr.heredocs[0].text()
                if script.startswith("#!"):    # BuildKit runs a script with a shebang by its interpreter
                    return (*shell, _shebang_runner(script))
                return (*shell, script)       # a bare heredoc is the shell script itself
            text = text + "\n" + "".join(f"{h.content}{h.name}\n" for h in instr.heredocs)
        return (*shell, text)

    def _copy(self, instr: Instr) -> None:
        self._copy_or_add(instr, add=False)

    def _add(self, instr: Instr) -> None:
        self._copy_or_add(instr, add=True)

    def _copy_or_add(self, instr: Instr, add: bool) -> None:
        word = "ADD" if add else "COPY"
        env = self._vars()
        flags = {k: shellwords.expand(v, env, self._st.escape) for k, v in instr.flags}
        unknown = sorted(set(flags) - {"from", "chown", "chmod"})
        if unknown:
            raise InvalidArgument(f"the --{unknown[0]} option requires BuildKit, which berth does not provide")
        if add and "from" in flags:
            raise InvalidArgument("ADD does not support --from: use COPY --from")
        words = [shellwords.expand(a, env, self._st.escape) if not a.startswith("<<") else a for a in instr.args]
        heredoc_files = {h.name: h for h in instr.heredocs}
        if len(words) < 2:
            raise InvalidArgument(f"{word} requires at least two arguments, but only one was provided. "
                                  f"Destination could not be determined.")
        patterns, dest = words[:-1], words[-1]
        chmod = parse_chmod(flags["chmod"]) if flags.get("chmod") else None
        workdir = self._st.config.working_dir or "/"
        dest_path = dest   # Docker's normalizeDest: a relative dest is joined to WORKDIR and cleaned
        if not dest.startswith("/"):
            dest_path = posixpath.normpath(posixpath.join("/", workdir, dest))
            if dest.endswith("/") and not dest_path.endswith("/"):
                dest_path += "/"
        parent = self._st.image
        with contextlib.ExitStack() as stack:
            from_ref = flags.get("from")
            src_root = stack.enter_context(self._image_view(from_ref)) if from_ref else self._s.context
            tree = OS_TREE if from_ref else self._s.tree   # the context's index answers for paths under its root
            sources: list[Path] = []
            names: list[str] = []
            urls: list[str] = []
            for pattern in patterns:
                if pattern.startswith("<<") and pattern[2:].lstrip("-").strip("'\"") in heredoc_files:
                    h = heredoc_files[pattern[2:].lstrip("-").strip("'\"")]
                    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self._s.work)))
                    content = h.text()
                    if h.expand:
                        content = shellwords.expand(content, env, self._st.escape)
                    (tmp / h.name).write_text(content)
                    os.chmod(tmp / h.name, 0o644)
                    sources.append(tmp / h.name)
                    names.append(h.name)
                elif add and pattern.startswith(("http://", "https://")):
                    urls.append(pattern)
                else:
                    for entry in resolve_source_entries(src_root, [pattern], tree):
                        sources.append(entry.path)
                        names.append(posixpath.basename(entry.name.rstrip("/")) or entry.path.name)
            for url in urls:
                tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self._s.work)))
                sources.append(fetch_url(url, tmp, dest_path))
                names.append(sources[-1].name)
            if len(sources) > 1 and not dest_path.endswith("/"):
                raise InvalidArgument(f"When using {word} with more than one source file, the destination must be "
                                      f"a directory and end with a /")
            checksum = source_checksum(sources, self._s.digest_of, tree)
            # dockerd 20.10's text: the --chown value runs into the checksum, dest as written
            chown_text = f"--chown={flags['chown']}" if flags.get("chown") else ""
            created_by = f"{' '.join(self._st.config.shell or DEFAULT_SHELL)} #(nop) {word} {chown_text}{checksum} " \
                         f"in {dest} "
            key_text = created_by + "\0" + repr(sorted(flags.items())) + "\0" + config_key(self._st.config)
            hit = self._s.cached(parent, key_text, checksum)
            if hit is None:
                self._s.materialize(sources)
                with self._s.snapshot(parent) as (key, mnt):
                    owner = lookup_owner(mnt, flags["chown"]) if flags.get("chown") else ROOT
                    with RootWriter(mnt) as root:
                        for src, name in zip(sources, names, strict=True):
                            if add and not urls and is_archive(src):
                                self._extract(root, src, dest_path, stack)
                            else:
                                root.copy([src], dest_path, dest_is_dir=dest_path.endswith("/") or
                                          (len(sources) > 1), owner=owner, chmod=chmod, name=name)
                hit = self._commit_snapshot(parent, key, self._st.config, created_by)
                self._s.remember(parent, key_text, hit, checksum)
        self._st.image, self._st.config = hit, hit.config.config

    def _extract(self, root: RootWriter, archive: Path, dest: str, stack: contextlib.ExitStack) -> None:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=self._s.work)))
        unpack_archive(archive, tmp)
        os.close(root.make_dirs(dest, ROOT))
        root.copy([tmp], dest, dest_is_dir=True, keep_owner=True)

    @contextlib.contextmanager
    def _image_view(self, ref: str) -> Iterator[Path]:
        """COPY --from: an earlier stage (by name or index) or an image, mounted read-only for the copy."""
        image = self._s.stage_image(ref)
        if image is None:
            if ref.isdigit():
                raise InvalidArgument(f"invalid from flag value {ref}: refers to a stage that is not built yet")
            image = self._s.external_image(ref)
        with self._s.snapshot(image) as (key, mnt):   # a throwaway snapshot: its upper dir stays empty
            yield mnt
        self._s.writer.discard(key)


def _shebang_runner(script: str) -> str:
    """Shell text that writes script to a temporary file, runs it by its #! line, removes it, keeps its status."""
    end = "BERTH_SCRIPT_" + hashlib.sha256(script.encode()).hexdigest()[:16]
    body = script if script.endswith("\n") else script + "\n"
    return (f"f=$(mktemp) && cat > \"$f\" <<'{end}'\n{body}{end}\n"
            f"chmod 700 \"$f\" && \"$f\"; s=$?; rm -f \"$f\"; exit $s")


def _text(instr: Instr) -> str:
    return instr.args[0] if instr.args else ""


def _with_line(exc: BerthError, instr: Instr) -> BerthError:
    if isinstance(exc, StepFailed) or "Dockerfile line" in str(exc):
        return exc
    if str(exc).startswith(shellwords.EXPANSION_FAILED):   # dockerd's words exactly: its Step line names the step
        return exc
    text = str(exc)
    prefix = "" if text.startswith(instr.keyword) else f"{instr.keyword} failed: "
    try:
        return type(exc)(f"{prefix}{text} (Dockerfile line {instr.line})")
    except TypeError:
        return InvalidArgument(f"{prefix}{text} (Dockerfile line {instr.line})")


__all__ = ["Dispatcher", "StageState", "Steps"]
