"""The statement as the agents are shown it: a line too long to be read is cut, with a note saying so.

Some statements carry an example whose input or output is one enormous line (CodeContests 288C prints a
permutation of ~16,000 numbers: an 83k-character statement). Sent whole, such a statement overflows the
context of a local server, which refuses every request (HTTP 400), so no method could even try the problem.
No reader learns anything from the 80,000th character of an example, so each line longer than
:data:`MAX_LINE_CHARS` keeps its head and says how much was left out. Every other line, and so every
statement without such a line, is sent byte for byte as before (cached responses stay valid). The public
tests themselves are untouched: programs still run on the full examples.
"""

from __future__ import annotations

MAX_LINE_CHARS = 2000  # longer than any line of prose or a normal example in the bundled datasets
KEEP_CHARS = 1000  # what a cut line keeps (then cut back to a space, so no number is split)


def visible_statement(text: str) -> str:
    """``text`` with every line longer than :data:`MAX_LINE_CHARS` shortened to its head and a note.

    Idempotent: a cut line is far shorter than the limit, so cutting again changes nothing."""
    return "\n".join(_cut(line) if len(line) > MAX_LINE_CHARS else line for line in text.split("\n"))


def _cut(line: str) -> str:
    head = line[:KEEP_CHARS]
    space = head.rfind(" ")
    if space > KEEP_CHARS // 2:
        head = head[:space]
    left = len(line) - len(head)
    return f"{head.rstrip()} … [{left:,} more characters of this line are not shown]"
