"""Reading an exec's multiplexed stream when Docker delivers its two halves out of order.

Docker copies a command's stdout and stderr in two goroutines, so under load the runner's exit
marker (stderr) can arrive before the last of the output (stdout); seen once in the full suite,
where a SWE diff came back empty. A socket pair stands in for the daemon so that order can be
produced on purpose; everything else here is the real reader.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from ponder.sandbox.docker_exec import Frames
from ponder.sandbox.exec_stream import read_exec
from ponder.sandbox.scripts import EXIT_MARKER, OutputEnd, end_marker, end_token

TOKEN = end_token()
END_OF_OUTPUT = end_marker(TOKEN)


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


def test_output_arriving_after_the_exit_marker_is_kept() -> None:
    daemon, ponder = socket.socketpair()
    diff = b"diff --git a/calc.py b/calc.py\n" * 2000

    def send_out_of_order() -> None:
        daemon.sendall(frame(2, EXIT_MARKER + b"0 0 1\n"))
        assert daemon.makefile("rb").readline() == f"{TOKEN}\n".encode()  # sent after the exit
        time.sleep(0.5)  # longer than the quiet period that once ended the read
        daemon.sendall(frame(1, diff[:1000]) + frame(1, diff[1000:] + END_OF_OUTPUT[:3]))
        daemon.sendall(frame(1, END_OF_OUTPUT[3:]))
        daemon.close()

    threading.Thread(target=send_out_of_order).start()
    received: list[bytes] = []
    read = read_exec(Frames(ponder), time.monotonic() + 10, received.append, token=TOKEN)
    ponder.close()
    assert b"".join(received) == diff  # all of it, and none of the end marker
    assert read.report.exit_code == 0


def test_the_end_marker_is_found_however_the_output_is_cut() -> None:
    # After the marker comes only what background jobs wrote once the command had ended.
    text = b"ok\n" + END_OF_OUTPUT + b"late\n"
    for cut in range(len(text)):
        received: list[bytes] = []
        end = OutputEnd(received.append, END_OF_OUTPUT)
        end.feed(text[:cut])
        end.feed(text[cut:])
        end.close()
        assert b"".join(received) == b"ok\n"
        assert end.seen
