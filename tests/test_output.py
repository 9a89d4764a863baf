"""What the model reads of a command's output: capped, cleaned, never broken mid-character."""

from __future__ import annotations

from ponder.sandbox.output import OutputCapture, StreamDecoder, clean_text


def capture(*pieces: bytes, limit: int = 100) -> OutputCapture:
    result = OutputCapture(limit=limit)
    for piece in pieces:
        result.add(piece)
    return result


def test_short_output_is_kept_whole() -> None:
    assert capture(b"hello\n", b"world\n").text() == "hello\nworld\n"


def test_long_output_keeps_both_ends_and_says_how_much_is_missing() -> None:
    data = b"".join(b"line %04d\n" % i for i in range(1000))
    result = capture(*(data[i : i + 7] for i in range(0, len(data), 7)))
    text = result.text()
    assert text.startswith("line 0000\n")
    assert text.endswith("line 0999\n")
    assert result.total == len(data)
    omitted = int(text.split("[... ")[1].split(" bytes")[0])
    shown = len(text.encode()) - len(text.split("\n[...")[1].split("]\n")[0]) - len("\n[...]\n")
    assert omitted + shown == len(data)


def test_cuts_never_split_a_character() -> None:
    text = capture("é".encode() * 500).text()
    assert "\ufffd" not in text
    assert text.startswith("éé")
    assert text.endswith("éé")


def test_escape_codes_and_carriage_return_redraws_are_cleaned() -> None:
    assert clean_text("\x1b[31mred\x1b[0m\n50%\r100%\n\x00") == "red\n100%\n"


def test_stream_decoder_waits_for_whole_characters() -> None:
    decoder = StreamDecoder()
    data = "ü☕".encode()
    assert "".join(decoder.decode(data[i : i + 1]) for i in range(len(data))) == "ü☕"
