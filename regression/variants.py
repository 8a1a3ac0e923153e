"""The variant matrix of the issue: every way to launch the user's script, minus those that
cannot exist, and the filter language that picks a slice of it.

A variant is plain data; its id reads ``backend-nN-placement-start-launcher-integration``, e.g.
``gloo-n2-rank0-spawn-mpspawn-issue``, so that ``-k`` selects by any part of it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from itertools import product
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPTS = REPO / "repro_scripts"
TWO_NODES = Path(__file__).resolve().parent / "two_nodes.py"

BACKENDS = ("gloo", "nccl")
WORLD_SIZES = (1, 2, 4)
PLACEMENTS = ("none", "rank0", "group")
START_METHODS = ("spawn", "forkserver")
LAUNCHERS = ("mpspawn", "torchrun", "torchrun2")
INTEGRATIONS = ("issue", "fixed")
# torchrun runs a script entrypoint through subprocess.Popen (torch.distributed.elastic's
# SubprocessContext); its --start-method reaches only function entrypoints, so for these scripts
# spawn and forkserver would be the same run twice. Its variants carry this start value instead.
POPEN = "popen"

SCRIPT = {
    ("none", "issue"): "issue_no_wandb.py",
    ("rank0", "issue"): "issue_rank0.py",
    ("rank0", "fixed"): "fixed_rank0.py",
    ("group", "issue"): "issue_group.py",
    ("group", "fixed"): "fixed_group.py",
}

# Why combinations are left out, shown by docs/regression.md and `--collect-only -q` readers.
PRUNED = {
    "none-fixed": "no wandb, nothing to fix: the fixed scripts differ only by @clean_exit around "
    "wandb; placement none has no fixed script",
    "torchrun-start": "torchrun starts script ranks with subprocess.Popen; --start-method applies "
    "to function entrypoints only, so one variant (start 'popen') stands for both",
    "torchrun2-n1": "two nodes need at least one rank each: world size 1 has no two-node variant",
}


@dataclass(frozen=True)
class Variant:
    backend: str
    nprocs: int
    placement: str
    start_method: str
    launcher: str
    integration: str

    @property
    def id(self) -> str:
        return (
            f"{self.backend}-n{self.nprocs}-{self.placement}-{self.start_method}-"
            f"{self.launcher}-{self.integration}"
        )

    def fields(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}

    @property
    def script(self) -> Path:
        return SCRIPTS / SCRIPT[self.placement, self.integration]

    def command(self, python: str = sys.executable) -> list[str]:
        """The command line that runs this variant; every launcher gets the same script args."""
        script_args = [str(self.script), "--backend", self.backend]
        if self.launcher == "mpspawn":
            return [
                python, *script_args, "--nprocs", str(self.nprocs),
                "--start-method", self.start_method,
            ]
        if self.launcher == "torchrun":
            return [
                python, "-m", "torch.distributed.run", "--standalone",
                "--nproc-per-node", str(self.nprocs), *script_args,
            ]
        return [python, str(TWO_NODES), "--nprocs", str(self.nprocs), "--", *script_args]


def all_variants() -> Iterator[Variant]:
    """Every variant that exists, in a stable order (cheap ones first within a backend)."""
    for backend, nprocs, launcher, (placement, integration) in product(
        BACKENDS, WORLD_SIZES, LAUNCHERS, SCRIPT
    ):
        if launcher == "torchrun2" and nprocs < 2:
            continue
        starts = START_METHODS if launcher == "mpspawn" else (POPEN,)
        for start in starts:
            yield Variant(backend, nprocs, placement, start, launcher, integration)


# --- the filter: `key=value` terms (value may list alternatives, a,b), `!=`, and/or/not, () ---

_TOKEN = re.compile(r"\s*(?:(\()|(\))|(!=|=)|([A-Za-z0-9_.,*-]+))")
FIELDS = tuple(Variant.__dataclass_fields__)
# What each field can be: a value outside these is a typo, which must not select an empty slice.
KNOWN_VALUES: dict[str, tuple[str, ...]] = {
    "backend": BACKENDS,
    "nprocs": tuple(map(str, WORLD_SIZES)),
    "placement": PLACEMENTS,
    "start_method": (*START_METHODS, POPEN),
    "launcher": LAUNCHERS,
    "integration": INTEGRATIONS,
}


class FilterError(ValueError):
    pass


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise FilterError(f"cannot read {text[pos:]!r} in {text!r}")
        out.append(match.group(match.lastindex or 0))
        pos = match.end()
    return out


Predicate = Callable[[dict[str, str]], bool]


def parse_filter(text: str, fields: tuple[str, ...] = FIELDS) -> Predicate:
    """Compile ``text`` into a predicate over a variant's fields (all compared as strings).

    Grammar: expr := term ('or' term)*; term := factor ('and' factor)*;
    factor := 'not' factor | '(' expr ')' | KEY ('='|'!=') VALUE[,VALUE...].
    Recursive descent over a token list: no eval; an unknown key or value is an error, not a miss.
    """
    tokens = _tokens(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        token = peek()
        if token is None or (expected is not None and token != expected):
            raise FilterError(f"expected {expected or 'more'} in {text!r}")
        pos += 1
        return token

    def expr() -> Predicate:
        parts = [term()]
        while peek() == "or":
            take()
            parts.append(term())
        return parts[0] if len(parts) == 1 else (lambda v: any(p(v) for p in parts))

    def term() -> Predicate:
        parts = [factor()]
        while peek() == "and":
            take()
            parts.append(factor())
        return parts[0] if len(parts) == 1 else (lambda v: all(p(v) for p in parts))

    def factor() -> Predicate:
        if peek() == "not":
            take()
            inner = factor()
            return lambda v: not inner(v)
        if peek() == "(":
            take()
            inner = expr()
            take(")")
            return inner
        key = take()
        if key not in fields:
            raise FilterError(f"unknown field {key!r} in {text!r}; fields: {', '.join(fields)}")
        op = take()
        if op not in ("=", "!="):
            raise FilterError(f"expected = or != after {key!r} in {text!r}")
        values = frozenset(take().split(","))
        unknown = values - set(KNOWN_VALUES.get(key, values))
        if unknown:
            raise FilterError(f"unknown {key} {', '.join(sorted(unknown))} in {text!r}; "
                              f"known: {', '.join(KNOWN_VALUES[key])}")
        if op == "=":
            return lambda v: v[key] in values
        return lambda v: v[key] not in values

    predicate = expr()
    if peek() is not None:
        raise FilterError(f"unexpected {peek()!r} in {text!r}")
    return predicate
