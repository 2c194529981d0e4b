"""Names and uids the store makes up: ``generateName`` suffixes and object uids.

Both are drawn from the store's seeded ``random.Random``, so the same seed and workload
give the same names and uids (and so the same ``history_digest``).
"""

from __future__ import annotations

import random

__all__ = ["ALPHABET", "SUFFIX_LENGTH", "generate_name", "new_uid"]

#: Kubernetes' ``utilrand`` alphabet: no vowels (no words), no confusable characters.
ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
#: ``names.SimpleNameGenerator`` appends five random characters.
SUFFIX_LENGTH = 5
#: Kubernetes truncates the prefix so that the generated name fits in 63 characters.
_MAX_PREFIX = 63 - SUFFIX_LENGTH

# uuid4 layout: version nibble 4 at bits 76..79, variant bits 10 at 62..63.
_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_SET = (0x4000 << 64) | (0x8000 << 48)


def generate_name(rng: random.Random, prefix: str) -> str:
    """``prefix`` (cut to 58 characters) plus five characters of :data:`ALPHABET`."""
    if len(prefix) > _MAX_PREFIX:
        prefix = prefix[:_MAX_PREFIX]
    return prefix + "".join(rng.choices(ALPHABET, k=SUFFIX_LENGTH))


def new_uid(rng: random.Random) -> str:
    """A version-4 uuid string from ``rng``.

    Equal to ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, at a third of the cost
    (this is on the create path).
    """
    h = "%032x" % ((rng.getrandbits(128) & _CLEAR) | _SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
