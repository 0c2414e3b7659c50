"""How work is split across machines: shard I of N takes the items (or samples) of rank r with r % N == I.

One rule for `spade-study generate --shard` and `spade-study saliency --shard`, so that merged
shards hold exactly the items of a single run.
"""
from __future__ import annotations

from dataclasses import dataclass


class ShardError(ValueError):
    """A malformed `--shard I/N`; the message is one line."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0-based): the ranks r with r % count == index."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """Parse `I/N` (0 <= I < N)."""
        try:
            i, n = (int(p) for p in text.split("/"))
        except ValueError:
            raise ShardError(f"--shard {text!r}: expected I/N, e.g. 0/4") from None
        if not (n >= 1 and 0 <= i < n):
            raise ShardError(f"--shard {text!r}: needs 0 <= I < N")
        return cls(i, n)

    def owns(self, rank: int) -> bool:
        """Whether this shard takes the item of this rank."""
        return rank % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"
