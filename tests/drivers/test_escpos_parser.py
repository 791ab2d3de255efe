"""The simulator's ESC/POS decoder: exact bytes in, text, codes, cuts and kicks out."""

from __future__ import annotations

import io
import itertools

from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from appliance.drivers.escpos_printer import escpos_printers
from appliance.drivers.sim.escpos_parser import (
    EscposParser,
    Kick,
    LineStyle,
    PrintedJob,
    StatusRequest,
    parse,
)
from appliance.drivers.sim.printer import render_png

ESC, GS = b"\x1b", b"\x1d"
CUT = GS + b"V\x00"


def only_job(data: bytes) -> PrintedJob:
    """The single job `data` prints."""
    jobs = parse(data)
    assert len(jobs) == 1, jobs
    return jobs[0]


def test_text_lines_in_the_selected_code_pages() -> None:
    # ESC t 19 is CP858 (with the euro at 0xD5); ESC t 0 is CP437 (0x84 is a-umlaut).
    data = ESC + b"@" + b"Caf\x82 2,50 " + ESC + b"t\x13\xd5\n" + ESC + b"t\x00M\x84rz\n" + CUT
    job = only_job(data)
    assert job.lines == ["Café 2,50 €", "März"]
    assert job.cuts == 1
    assert job.raw == data


def test_styles_follow_esc_and_gs_commands() -> None:
    data = (
        ESC + b"a\x01" + ESC + b"E\x01" + GS + b"!\x11" + b"BIG\n"
        + ESC + b"!\x00" + ESC + b"a2" + b"right\n"
        + ESC + b"!\x38" + ESC + b"a\x00" + ESC + b"-\x01" + b"mode\n"
    )  # fmt: skip
    styles = [block.style for block in only_job(data).blocks]
    assert styles == [
        LineStyle(align="center", bold=True, width=2, height=2),
        LineStyle(align="right"),  # ESC ! 0 clears emphasis set by ESC E: last one wins
        LineStyle(align="left", bold=True, underline=1, width=2, height=2),
    ]


def test_every_cut_variant_ends_a_job() -> None:
    cuts = [b"V\x00", b"V\x01", b"V0", b"V1", b"VA\x03", b"VB\x00", b"Va\x05", b"Vh\x00"]
    data = b"".join(f"job {i}\n".encode() + GS + cut for i, cut in enumerate(cuts))
    jobs = parse(data + ESC + b"i")
    assert [job.lines for job in jobs] == [[f"job {i}"] for i in range(len(cuts))] + [[]]
    assert all(job.cuts == 1 for job in jobs)


def test_barcodes_in_function_a_and_b() -> None:
    ean = GS + b"k\x02" + b"4006381333931\x00"
    code128 = GS + b"kI\x0e" + b"{BK01-{{000123"
    job = only_job(ean + code128 + b"after\n" + CUT)
    assert job.barcodes == ["4006381333931", "K01-{000123"]
    assert job.lines == ["after"]
    assert [block.kind for block in job.blocks] == ["barcode", "barcode", "text"]


def test_qr_settings_are_skipped_and_the_stored_data_printed() -> None:
    data = (
        GS + b"(k\x04\x001A2\x00"  # model 2
        + GS + b"(k\x03\x001C\x05"  # module size 5
        + GS + b"(k\x03\x001E0"  # error correction L
        + GS + b"(k\x0c\x001P0sale-\n1\x1b@"  # store 9 bytes, a LF and ESC @ among them
        + GS + b"(k\x03\x001Q0"  # print
        + CUT
    )  # fmt: skip
    job = only_job(data)
    assert job.qr == ["sale-\n1\x1b@"]
    assert job.lines == []


def test_drawer_kicks_with_pin_and_pulse() -> None:
    data = ESC + b"p\x00\x32\x32" + ESC + b"p1\x19\x19" + b"\x10\x14\x01\x00\x02" + b"x\n" + CUT
    outputs = EscposParser().feed(data)
    assert outputs[:3] == [Kick(2, 100), Kick(5, 50), Kick(2, 200)]
    job = outputs[3]
    assert isinstance(job, PrintedJob)
    assert job.kicks == [(2, 100), (5, 50), (2, 200)]
    assert job.lines == ["x"]


def test_python_escpos_cashdraw_is_a_100_ms_pulse_on_pin_2() -> None:
    printer = escpos_printers().Dummy(profile="TM-T88V")
    printer.cashdraw(2)
    assert printer.output == b"\x1b\x70\x00\x32\x32"
    assert EscposParser().feed(printer.output) == [Kick(2, 100)]


def test_status_requests_come_out_in_order_with_the_rest() -> None:
    data = b"\x10\x04\x01a\n\x10\x04\x04" + CUT + b"\x10\x04\x02\x10\x04\x07\x01\x10\x04\x09"
    outputs = EscposParser().feed(data)
    assert outputs[0] == StatusRequest(1)
    assert outputs[1] == StatusRequest(4)
    assert isinstance(outputs[2], PrintedJob) and outputs[2].lines == ["a"]
    assert outputs[3:] == [StatusRequest(2)]  # n=7 carries a byte; n=9 is not a request


def test_images_are_skipped_by_their_length() -> None:
    raster = GS + b"v0\x00\x02\x00\x03\x00" + b"\n\x1b@\x1dV\x00"  # 2 bytes x 3 rows
    column = ESC + b"*\x21\x02\x00" + b"\x1dV\x00\x0a\x0a\x0a"  # 2 columns x 3 bytes
    graphics = GS + b"(L\x06\x000p\x0a\x0a\x0a\x0a" + GS + b"(L\x02\x0002"
    job = only_job(b"top\n" + raster + column + graphics + b"bottom\n" + CUT)
    assert job.lines == ["top", "bottom"]
    assert [block.kind for block in job.blocks] == ["text", "image", "text"]


def test_unknown_commands_are_stepped_over() -> None:
    data = ESC + b"\x99" + GS + b"\x98" + b"\x1c\x97" + ESC + b"B\x02\x03" + b"ok\n" + CUT
    assert only_job(data).lines == ["ok"]


def test_bytes_split_anywhere_decode_the_same() -> None:
    printer = escpos_printers().Dummy(profile="TM-T88V")
    printer.textln("Grüße 9,99 €")
    printer.qr("0190-id", native=True)
    printer.cashdraw(5)
    printer.cut()
    whole = EscposParser().feed(printer.output)
    parser = EscposParser()
    pieces = [
        out for i in range(len(printer.output)) for out in parser.feed(printer.output[i : i + 1])
    ]
    assert pieces == whole
    assert isinstance(whole[-1], PrintedJob) and whole[-1].lines == ["Grüße 9,99 €"]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise_and_always_end(data: bytes) -> None:
    parse(data)
    parse(b"\x1b@hello\n" + data + b"\n\x1dV\x00")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=512), st.lists(st.integers(0, 512), max_size=8))
def test_random_bytes_decode_the_same_however_they_are_split(data: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    parser = EscposParser()
    pieces = [out for a, b in itertools.pairwise(bounds) for out in parser.feed(data[a:b])]
    assert pieces == EscposParser().feed(data)


def test_unfinished_text_is_kept_until_the_stream_ends() -> None:
    jobs = parse(b"one\n" + CUT + b"two\nthr")
    assert [job.lines for job in jobs] == [["one"], ["two", "thr"]]
    assert [job.cuts for job in jobs] == [1, 0]


def test_png_preview_is_a_png_that_grows_with_the_lines() -> None:
    def height(lines: int) -> int:
        data = b"".join(f"line {i}\n".encode() for i in range(lines)) + CUT
        png = render_png(only_job(ESC + b"a\x01" + GS + b"k\x02" + b"4006381333931\x00" + data))
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        with Image.open(io.BytesIO(png)) as image:
            image.verify()
        with Image.open(io.BytesIO(png)) as image:
            return image.height

    short, long = height(3), height(30)
    assert long > short
    assert height(31) > long
