"""What a build will do, decided before any step runs: the stages up to --target, their bases (FROM expanded with
the global ARGs and --build-arg), whether a base is an earlier stage, the parser's warnings, and the step count
Docker prints as `Step i/N` (dockerd's classic builder counts and prints the global ARGs as steps too). Pure.

May import: berth.build.dockerfile, berth.build.shellwords, berth.build.steps, berth.errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from berth.build import shellwords
from berth.build.dockerfile import Dockerfile, Instruction, parse
from berth.build.steps import ArgScope
from berth.errors import InvalidArgument

Instr = Instruction


@dataclass(frozen=True, slots=True)
class Stage:
    index: int
    name: str | None
    base: str                      # expanded
    base_is_stage: bool
    platform: str
    from_text: str                 # the FROM line as Docker prints it in `Step i/N : ...`
    from_line: int
    instructions: tuple[Instruction, ...]
    is_last: bool
    error: str = ""                # FROM's expansion failed: raised once its Step line is out, as dockerd does


@dataclass(frozen=True, slots=True)
class Plan:
    escape: str
    stages: tuple[Stage, ...]
    global_defaults: Mapping[str, str | None]
    given: Mapping[str, str | None]
    declared_args: frozenset[str]
    total_steps: int
    global_args: tuple[Instruction, ...] = ()    # printed as the first steps, as dockerd prints them
    warnings: tuple[str, ...] = ()               # printed before step 1, as dockerd prints them
    global_error: tuple[int, str] | None = None  # (index, message): that global ARG's expansion failed

    def args_for(self, stage: Stage) -> ArgScope:
        return ArgScope(given=self.given, global_defaults=self.global_defaults)


def plan_build(text: str, target: str, build_args: Mapping[str, str | None], extra_steps: int = 0) -> Plan:
    dockerfile = parse(text)
    if not dockerfile.stages:
        raise InvalidArgument("the Dockerfile (Dockerfile) cannot be empty" if not text.strip() else
                              "Dockerfile has no FROM instruction: a build needs one")
    last = dockerfile.stage(target, allow_index=False).index if target else len(dockerfile.stages) - 1
    globals_, declared, global_error = _global_args(dockerfile, build_args)
    stages: list[Stage] = []
    names: set[str] = set()
    for st in dockerfile.stages[: last + 1]:
        env = {k: v for k, v in globals_.items() if v is not None}
        error = ""   # dockerd's words, without a line: its Step line for this FROM is printed just before
        try:
            base = shellwords.expand(st.base, env, dockerfile.escape)
            platform = shellwords.expand(st.platform, env, dockerfile.escape) if st.platform else ""
        except InvalidArgument as exc:
            base, platform, error = "", "", str(exc)
        if not base and not error:
            error = f"base name ({st.base}) should not be blank"
        original = st.from_instruction.original if st.from_instruction is not None else f"FROM {st.base}"
        for instr in st.instructions:
            if instr.keyword == "ARG":
                declared.update(name for name, _ in instr.arg_pairs())
        stages.append(Stage(st.index, st.name, base, base.lower() in names, platform, original, st.line,
                            st.instructions, st.index == last, error))
        if st.name:
            names.add(st.name)
    total = len(dockerfile.global_args) + sum(1 + len(s.instructions) for s in stages) + extra_steps
    return Plan(dockerfile.escape, tuple(stages), globals_, dict(build_args), frozenset(declared), total,
                tuple(dockerfile.global_args), tuple(dockerfile.warnings), global_error)


def _global_args(dockerfile: Dockerfile, given: Mapping[str, str | None]
                 ) -> tuple[dict[str, str | None], set[str], tuple[int, str] | None]:
    """The global ARGs' values as FROM sees them (a --build-arg wins over the default), and the first one whose
    default does not expand (its index and the error), if any."""
    values: dict[str, str | None] = {}
    declared: set[str] = set()
    for index, instr in enumerate(dockerfile.global_args):
        for name, default in instr.arg_pairs():
            declared.add(name)
            env = {k: v for k, v in values.items() if v is not None}
            try:
                expanded = shellwords.expand(default, env, dockerfile.escape) if default is not None else None
            except InvalidArgument as exc:
                return values, declared, (index, str(exc))
            values[name] = given[name] if given.get(name) is not None else expanded
    return values, declared, None


def parse_trigger(text: str) -> Instruction:
    """An ONBUILD trigger from an image's config, as the instruction it runs in the child build."""
    dockerfile = parse("FROM scratch\n" + text + "\n")
    instructions = dockerfile.stages[0].instructions if dockerfile.stages else ()
    if len(instructions) != 1:
        raise InvalidArgument(f"invalid ONBUILD trigger {text!r}")
    return instructions[0]
