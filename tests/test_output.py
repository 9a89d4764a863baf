"""What the model reads of a command's output: capped, cleaned, never broken mid-character."""

from __future__ import annotations

import re

from ponder.sandbox.output import OutputCapture, StreamDecoder, clean_text


def capture(*pieces: bytes, view_bytes: int = 100, view_lines: int = 256) -> OutputCapture:
    result = OutputCapture(view_bytes=view_bytes, view_lines=view_lines, log_bytes=10_000)
    for piece in pieces:
        result.add(piece)
    return result


def left_out(text: str) -> tuple[int, int]:
    match = re.search(r"\[\.\.\. (\d+) bytes, (\d+) lines left out", text)
    assert match, text
    return int(match.group(1)), int(match.group(2))


def test_short_output_is_kept_whole() -> None:
    result = capture(b"hello\n", b"world\n")
    assert result.text() == "hello\nworld\n"
    assert not result.truncated


def test_long_output_keeps_both_ends_and_counts_what_is_missing() -> None:
    data = b"".join(b"line %04d\n" % i for i in range(1000))
    result = capture(*(data[i : i + 7] for i in range(0, len(data), 7)))
    text = result.text("/tmp/.ponder/logs/x.log")
    head, marker_and_tail = text.split("\n[...", 1)
    tail = marker_and_tail.split("...]\n", 1)[1]
    assert text.startswith("line 0000\n")
    assert text.endswith("line 0999\n")
    assert "; the full output is in /tmp/.ponder/logs/x.log ...]" in text
    omitted_bytes, omitted_lines = left_out(text)
    assert omitted_bytes + len(head.encode()) + len(tail.encode()) == len(data)
    assert omitted_lines + head.count("\n") + tail.count("\n") == 1000
    # The whole output is kept (up to the log cap) for the log file.
    assert result.full_output() == data[:10_000]


def test_many_short_lines_are_cut_by_lines() -> None:
    data = b"".join(b"%d\n" % i for i in range(100))
    text = capture(data, view_bytes=10_000, view_lines=10).text()
    assert text.startswith("0\n1\n2\n3\n4\n[...")
    assert text.endswith("...]\n96\n97\n98\n99\n")
    assert left_out(text)[1] == 100 - 4 - 4


def test_cuts_never_split_a_character() -> None:
    text = capture("é".encode() * 500).text()
    assert "\ufffd" not in text
    assert text.startswith("éé")
    assert text.endswith("éé")


def test_binary_output_is_summarised() -> None:
    text = capture(bytes(range(256)) * 40).text()
    assert text.startswith("[binary output: 10240 bytes, sha256 ")
    assert "00 01 02 03" in text


def test_mostly_text_with_stray_bytes_stays_text() -> None:
    assert capture(b"caf\xe9 ok\n").text() == "caf\ufffd ok\n"


def test_colours_and_carriage_return_redraws_are_cleaned() -> None:
    assert clean_text("\x1b[31mred\x1b[0m\n50%\r100%\n\x00") == "red\n100%\n␀"


def test_the_live_stream_cleans_whole_escape_sequences() -> None:
    decoder = StreamDecoder()
    pieces = [b"ok \x1b[3", b"1mred\x1b", b"[0m \x1b]0;", b"title\x07\n"]
    assert "".join(decoder.decode(piece) for piece in pieces) == "ok red ␛]0;title␇\n"


def test_stream_decoder_waits_for_whole_characters() -> None:
    decoder = StreamDecoder()
    data = "ü☕".encode()
    assert "".join(decoder.decode(data[i : i + 1]) for i in range(len(data))) == "ü☕"
