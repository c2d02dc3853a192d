"""Backend-independent streaming text assembly: UTF-8 reassembly, stop strings, hold-back.

Both backends produce token byte pieces one at a time. A multi-byte character can straddle two tokens,
and a stop string can straddle several, so text is only released once it can no longer become part of
a stop string. Keeping this in one place means both backends stop at exactly the same character.
"""

from __future__ import annotations

import codecs
from collections.abc import Sequence

from .base import truncate_at_stop


def _holdback(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
    keep = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), keep, -1):
            if text.endswith(stop[:n]):
                keep = n
                break
    return keep


class StopStream:
    """Feed decoded bytes, get back text that is safe to show; ``stopped`` turns true at a stop string."""

    def __init__(self, stops: Sequence[str]) -> None:
        self._stops = tuple(s for s in stops if s)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._text = ""
        self._emitted = 0
        self.stopped = False

    @property
    def text(self) -> str:
        """Everything accepted so far (cut at the stop string once one is hit)."""
        return self._text

    def feed(self, piece: bytes | str) -> str:
        if self.stopped:
            return ""
        self._text += self._decoder.decode(piece) if isinstance(piece, bytes) else piece
        cut, hit = truncate_at_stop(self._text, self._stops)
        if hit:
            self.stopped = True
            self._text = cut
            return self._release(len(cut))
        return self._release(len(self._text) - _holdback(self._text, self._stops))

    def finish(self) -> str:
        """Flush held-back text (and any dangling partial UTF-8 sequence) at the end of generation."""
        if not self.stopped:
            self._text += self._decoder.decode(b"", final=True)
            cut, hit = truncate_at_stop(self._text, self._stops)
            self._text = cut
            self.stopped = hit
        return self._release(len(self._text))

    def _release(self, upto: int) -> str:
        upto = max(upto, self._emitted)
        out = self._text[self._emitted : upto]
        self._emitted = upto
        return out
