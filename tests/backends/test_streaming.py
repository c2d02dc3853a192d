"""StopStream: stop strings across pieces, hold-back, UTF-8 split across tokens, final flush."""

from __future__ import annotations

from bdc_assistant.backends.streaming import StopStream


def _run(pieces: list[bytes | str], stops: tuple[str, ...]) -> tuple[list[str], StopStream]:
    s = StopStream(stops)
    out = [s.feed(p) for p in pieces]
    out.append(s.finish())
    return out, s


def test_no_stops_passes_through() -> None:
    out, s = _run(["ab", "c"], ())
    assert out == ["ab", "c", ""] and not s.stopped and s.text == "abc"


def test_stop_split_across_pieces_is_never_shown() -> None:
    out, s = _run(["x = 1\n", "``", "`\nmore"], ("```",))
    assert "".join(out) == "x = 1\n"
    assert s.stopped
    assert out[1] == ""  # "``" was held back until it was known to be the stop


def test_held_back_prefix_is_released_when_it_is_not_a_stop() -> None:
    out, s = _run(["a\n", "\n", "b"], ("\n\n\n",))
    assert out == ["a", "", "\n\nb", ""]
    assert not s.stopped


def test_hold_back_is_flushed_at_the_end() -> None:
    out, _ = _run(["end`"], ("```",))
    assert out == ["end", "`"]


def test_earliest_of_several_stops_wins() -> None:
    out, s = _run(["abc<END>def\n\n"], ("\n\n", "<END>"))
    assert "".join(out) == "abc" and s.stopped


def test_utf8_character_split_across_tokens() -> None:
    e_acute = "é".encode()
    out, _ = _run([b"caf", e_acute[:1], e_acute[1:], b"!"], ())
    assert out == ["caf", "", "é", "!", ""]


def test_invalid_bytes_become_replacement_characters() -> None:
    out, _ = _run([b"a", b"\xff", b"b", b"\xe2"], ())
    assert "".join(out) == "a\ufffdb\ufffd"


def test_feed_after_stop_is_ignored() -> None:
    s = StopStream(["#"])
    assert s.feed("a#b") == "a"
    assert s.feed("more") == ""
    assert s.finish() == ""
