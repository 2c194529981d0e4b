"""The image registry every fake engine pulls from: pull times, failures, default programs.

Unconfigured images pull in :data:`DEFAULT_PULL_SECONDS` (± :data:`PULL_JITTER`, seeded)
and run :data:`~runtime.programs.DEFAULT_PROGRAM`, so manifests from the wild work with
no setup. One second is a small image from a nearby mirror; ``mark_slow`` models a big
one (real pulls of 100 MB+ images take tens of seconds).

The registry is shared by every host and holds no per-host state; which images a host
has cached is the engine's business.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import attrs

from runtime.programs import DEFAULT_PROGRAM, Program, ProgramFn
from runtime.shell import UTILITIES, compile_argv

__all__ = [
    "DEFAULT_PULL_SECONDS",
    "PULL_JITTER",
    "ImageSpec",
    "Registry",
    "normalize_image",
    "resolve_argv",
]

DEFAULT_PULL_SECONDS = 1.0
PULL_JITTER = 0.2
"""A pull takes ``pull_seconds * uniform(1 - PULL_JITTER, 1 + PULL_JITTER)``."""


def normalize_image(image: str) -> str:
    """The canonical reference: ``nginx`` and ``docker.io/library/nginx:latest`` are the
    same image (a missing tag means ``latest``; Docker Hub's prefixes are dropped)."""
    name = image.strip()
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/"):
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    last = name.rsplit("/", 1)[-1]
    if "@" not in last and ":" not in last:
        name += ":latest"
    return name


@attrs.frozen(kw_only=True)
class ImageSpec:
    """How one image behaves. ``program`` runs when the container gives no command (or
    a command the fake does not know, i.e. the image's own binary)."""

    pull_seconds: float = DEFAULT_PULL_SECONDS
    program: Program | ProgramFn = DEFAULT_PROGRAM
    missing: bool = False


_DEFAULT_SPEC = ImageSpec()


def resolve_argv(command: Sequence[str], args: Sequence[str]) -> tuple[str, ...]:
    """The command line Docker would run, as far as the fake can know it.

    ``command`` replaces the image's entrypoint and ``args`` its default arguments.
    With only ``args``, the image's entrypoint is unknown; images people pass utility
    args to (``busybox``: ``args: ["sleep", "3600"]``) have none, so args that start with
    a shell or known utility are taken as the command line. Otherwise () : the image's
    own program runs.
    """
    if command:
        return (*command, *args)
    if args and args[0].rsplit("/", 1)[-1] in _KNOWN:
        return tuple(args)
    return ()


_UNCACHED = object()
_KNOWN = UTILITIES | {"sh", "bash", "ash", "dash", "ksh", "zsh"}


class Registry:
    """Images, their pull time and their default program; shared by all hosts.

    Also caches the (pure) compilation of command lines into programs, so containers
    stamped from one template share one :class:`Program`.
    """

    def __init__(self) -> None:
        self._specs: dict[str, ImageSpec] = {}
        # command line (+ env) -> compiled program, or None: not a command the fake knows
        self._programs: dict[tuple[object, ...], Program | None] = {}

    def add(
        self,
        image: str,
        *,
        pull_seconds: float = DEFAULT_PULL_SECONDS,
        program: Program | ProgramFn | None = None,
    ) -> None:
        """Register ``image``: its pull time and the program it runs by default
        (a declarative :class:`Program` or an ``async def program(ctx)``)."""
        if pull_seconds < 0:
            raise ValueError(f"pull_seconds: must be >= 0, got {pull_seconds!r}")
        self._set(
            image,
            ImageSpec(pull_seconds=pull_seconds, program=program or DEFAULT_PROGRAM),
        )

    def mark_missing(self, image: str) -> None:
        """Pulls of ``image`` fail with ImagePullError reason ``NotFound``."""
        self._set(image, attrs.evolve(self.spec(image), missing=True))

    def mark_slow(self, image: str, seconds: float) -> None:
        """Pulls of ``image`` take ``seconds`` (± jitter)."""
        if seconds < 0:
            raise ValueError(f"seconds: must be >= 0, got {seconds!r}")
        self._set(image, attrs.evolve(self.spec(image), pull_seconds=seconds))

    def spec(self, image: str) -> ImageSpec:
        """How ``image`` behaves (the defaults if it was never configured)."""
        return self._specs.get(normalize_image(image), _DEFAULT_SPEC)

    def pull_duration(self, image: str, rng: random.Random) -> float:
        """How long one pull of ``image`` takes (draws one number from ``rng``)."""
        base = self.spec(image).pull_seconds
        return base * rng.uniform(1 - PULL_JITTER, 1 + PULL_JITTER)

    def program_for(
        self,
        image: str,
        command: Sequence[str],
        args: Sequence[str],
        env: Mapping[str, str],
    ) -> Program | ProgramFn:
        """What a container of ``image`` with this command line runs (cached)."""
        argv = resolve_argv(command, args)
        if not argv:
            return self.spec(image).program
        # The env only matters to scripts that can read it; leaving it out of the key
        # otherwise lets pods with per-pod env (POD_NAME, ...) share one program.
        reads_env = any("$" in a or "env" in a for a in argv)
        key = (argv, tuple(sorted(env.items()))) if reads_env else (argv,)
        program = self._programs.get(key, _UNCACHED)
        if program is _UNCACHED:
            program = self._programs[key] = compile_argv(argv, env)
        return self.spec(image).program if program is None else program

    def _set(self, image: str, spec: ImageSpec) -> None:
        self._specs[normalize_image(image)] = spec
