"""server/vision: real barcodes rendered into camera-like frames, and optional OCR.

Frames are drawn at 4× and downsampled like a camera would (LANCZOS, a slight blur),
with real EAN-13 / UPC-A / QR symbols from zxing-cpp's own writer pasted small and
slanted; one EAN-13 is drawn here from the standard encoding tables, so a wrong
check digit can be printed.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import zxingcpp
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from server.errors import ModelLoadError
from server.vision.barcodes import (
    Barcode,
    BarcodeMemory,
    BarcodeOptions,
    CodeKind,
    decode_barcodes,
    describe,
    gtin_check_digit_ok,
    worst_case_pixels,
)
from server.vision.box import Box, where_in_view
from server.vision.ocr import RapidOcr, TextLine, load_ocr, reading_text

W, H, K = 640, 480, 4  # the frame, and the oversampling it is drawn at
PLAIN = BarcodeOptions(try_harder=False)

EAN13 = "4006381333931"
UPCA = "036000291452"
QR = "https://murmur.example/p/42"


# --- drawing frames ---------------------------------------------------------------


def _shop_scene(seed: int) -> Image.Image:
    """A smooth background with a few product-coloured boxes, at K× the frame."""
    rng = np.random.default_rng(seed)
    base = rng.integers(70, 190, size=(7, 9, 3), dtype=np.uint8)
    img = Image.fromarray(base).resize((W * K, H * K), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x, y = int(rng.integers(0, W * K)), int(rng.integers(0, H * K))
        w, h = int(rng.integers(200, 900)), int(rng.integers(300, 1200))
        draw.rectangle((x, y, x + w, y + h), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    return img


def _symbol(content: str, fmt: zxingcpp.BarcodeFormat) -> Image.Image:
    """One pixel a module, quiet zones included."""
    return Image.fromarray(np.array(zxingcpp.create_barcode(content, fmt).to_image(scale=1)))


def _frame(*codes: tuple[Image.Image, float, float, tuple[float, float]], seed=1) -> Image.Image:
    """A 640×480 frame with each (symbol, pixels per module, degrees, centre as a
    fraction of the frame) pasted in."""
    big = _shop_scene(seed)
    for symbol, module_px, angle, (cx, cy) in codes:
        s = round(module_px * K)
        c = symbol.convert("RGB").resize(
            (symbol.width * s, symbol.height * s), Image.Resampling.NEAREST
        )
        c = c.convert("RGBA").rotate(angle, Image.Resampling.BICUBIC, expand=True)
        big.paste(c, (int(cx * W * K) - c.width // 2, int(cy * H * K) - c.height // 2), c)
    small = big.resize((W, H), Image.Resampling.LANCZOS)
    return small.filter(ImageFilter.GaussianBlur(0.6))


# EAN-13 by hand (GS1 General Specifications §5.2.1.2): left-half digits in odd (L)
# or even (G) parity chosen by the first digit, right half in R.
_L = ("0001101", "0011001", "0010011", "0111101", "0100011",
      "0110001", "0101111", "0111011", "0110111", "0001011")  # fmt: skip
_R = tuple(c.translate(str.maketrans("01", "10")) for c in _L)
_G = tuple(c[::-1] for c in _R)
_PARITY = ("LLLLLL", "LLGLGG", "LLGGLG", "LLGGGL", "LGLLGG",
           "LGGLLG", "LGGGLL", "LGLGLG", "LGLGGL", "LGGLGL")  # fmt: skip


def _drawn_ean13(digits: str) -> Image.Image:
    parity = _PARITY[int(digits[0])]
    left = "".join(
        (_L if p == "L" else _G)[int(d)] for p, d in zip(parity, digits[1:7], strict=True)
    )
    right = "".join(_R[int(d)] for d in digits[7:])
    modules = "101" + left + "01010" + right + "101"
    row = np.array([255] * 11 + [0 if m == "1" else 255 for m in modules] + [255] * 11, np.uint8)
    return Image.fromarray(np.repeat(row[None, :], 55, axis=0))


# --- decoding ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fmt", "module_px", "angle", "plain_finds_it"),
    [
        (EAN13, zxingcpp.EAN13, 2.0, 10, True),
        (EAN13, zxingcpp.EAN13, 2.5, 40, False),  # the ±30° passes
        (EAN13, zxingcpp.EAN13, 3.0, 150, False),
        (QR, zxingcpp.QRCode, 2.0, 35, True),
        (QR, zxingcpp.QRCode, 1.5, 0, False),  # the 2× pass: 1.5 px modules
    ],
)
def test_small_and_slanted_codes_in_a_frame_are_read(
    content, fmt, module_px, angle, plain_finds_it
):
    frame = _frame((_symbol(content, fmt), module_px, angle, (0.3, 0.6)))
    assert bool(decode_barcodes(frame, PLAIN)) is plain_finds_it
    [code] = decode_barcodes(frame)
    assert code.text == content
    assert code.image_size == (W, H)
    assert code.box.left <= 0.3 * W <= code.box.right and code.box.top <= 0.6 * H <= code.box.bottom
    assert code.where == "on the left of the view"
    if fmt == zxingcpp.EAN13:
        assert (code.format, code.kind, code.check_digit_ok) == ("EAN-13", CodeKind.PRODUCT, True)
    else:
        assert (code.format, code.kind, code.check_digit_ok) == ("QR Code", CodeKind.LINK, None)


def test_a_upc_a_reads_as_its_twelve_printed_digits():
    # zxing-cpp 3 reports a UPC-A as the EAN-13 "0" + 12 digits: the bars are the same.
    [code] = decode_barcodes(_frame((_symbol(UPCA, zxingcpp.UPCA), 2.0, 5, (0.5, 0.5))))
    assert (code.format, code.text, code.kind, code.check_digit_ok) == (
        "UPC-A",
        UPCA,
        CodeKind.PRODUCT,
        True,
    )


def test_two_codes_in_one_frame_come_top_to_bottom():
    frame = _frame(
        (_symbol(EAN13, zxingcpp.EAN13), 2.0, 10, (0.3, 0.65)),
        (_symbol(QR, zxingcpp.QRCode), 2.0, 20, (0.8, 0.2)),
    )
    codes = decode_barcodes(frame)
    assert [c.text for c in codes] == [QR, EAN13]
    assert describe(codes) == (
        f'Barcode QR Code "{QR}" (link) at the top right of the view. '
        f"Barcode EAN-13 {EAN13} (product code) on the left of the view."
    )


def test_a_still_at_full_resolution_is_read():
    still = Image.new("L", (2000, 1500), 170)
    still.paste(_symbol(EAN13, zxingcpp.EAN13).resize((113 * 5, 55 * 5)), (1200, 900))
    [code] = decode_barcodes(still)
    assert (code.text, code.where) == (EAN13, "at the bottom right of the view")
    assert code.box.left >= 1200 and code.box.bottom <= 900 + 55 * 5


def test_the_hand_drawn_ean13_matches_the_writer():
    # The encoding tables above are right: zxing reads the drawn symbol.
    [code] = decode_barcodes(_frame((_drawn_ean13(EAN13), 2.5, 5, (0.5, 0.5))))
    assert code.text == EAN13 and code.check_digit_ok is True


def test_a_wrong_check_digit_is_reported_only_when_asked():
    misprint = EAN13[:-1] + "2"
    frame = _frame((_drawn_ean13(misprint), 2.5, 5, (0.5, 0.5)))
    assert decode_barcodes(frame) == []  # default: such reads were misreads, not packs
    [code] = decode_barcodes(frame, BarcodeOptions(keep_bad_check_digits=True))
    assert (code.format, code.text, code.check_digit_ok) == ("EAN-13", misprint, False)
    assert "check digit wrong, may be misread" in describe([code])


def _truncated_jpeg() -> Image.Image:
    buf = io.BytesIO()
    _frame((_symbol(EAN13, zxingcpp.EAN13), 2.5, 0, (0.5, 0.5))).save(buf, "JPEG")
    return Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) // 3]))


@pytest.mark.parametrize(
    "image",
    [
        pytest.param(Image.new("RGB", (W, H), "white"), id="blank"),
        pytest.param(_frame(), id="scene-without-codes"),
        pytest.param(Image.new("L", (0, 0)), id="empty"),
        pytest.param(_truncated_jpeg(), id="truncated-jpeg"),
    ],
)
def test_nothing_to_read_gives_no_codes(image):
    assert decode_barcodes(image) == []


def test_the_cost_is_bounded_by_pixels():
    # A frame's harder passes stay about 10× the plain one; a 12 MP phone still is
    # decoded downscaled, so it costs no more than a 3 MP one.
    assert worst_case_pixels((W, H)) <= 11 * W * H
    assert worst_case_pixels((W, H), PLAIN) == W * H
    assert worst_case_pixels((4032, 3024)) <= 5_000_000
    assert worst_case_pixels((4032, 3024), PLAIN) <= BarcodeOptions().max_pixels


def test_missing_zxing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "zxingcpp", None)
    with pytest.raises(ModuleNotFoundError, match="pip install zxing-cpp"):
        decode_barcodes(Image.new("L", (64, 64)))


@pytest.mark.parametrize(
    ("digits", "ok"),
    [
        ("4006381333931", True),  # EAN-13
        ("036000291452", True),  # UPC-A
        ("012345678905", True),  # UPC-A
        ("96385074", True),  # EAN-8
        ("09506000134352", True),  # GTIN-14 (GS1's own example)
        ("4006381333932", False),
        ("036000291453", False),
        ("400638133393", False),  # a digit missing: not a GTIN-12 either
        ("40063813339", False),  # no such length
        ("40063813339a", False),
        ("", False),
        ("٤٠٠٦٣٨١٣٣٣٩٣١", False),  # Arabic-Indic digits are not GS1 digits
    ],
)
def test_gtin_check_digit(digits, ok):
    assert gtin_check_digit_ok(digits) is ok


# --- memory and wording -------------------------------------------------------------


CENTRE = Box(270, 200, 370, 280)


def _code(
    text: str,
    fmt: str = "EAN-13",
    box: Box = CENTRE,
    kind: CodeKind = CodeKind.PRODUCT,
    check_digit_ok: bool | None = True,
) -> Barcode:
    return Barcode(fmt, text, kind, box, (W, H), check_digit_ok)


def test_barcode_memory_announces_a_code_once_while_it_stays_in_view():
    memory = BarcodeMemory(window_s=10.0)
    a, b = _code(EAN13), _code(UPCA, "UPC-A")
    assert memory.fresh([a], now=0.0) == [a]
    assert memory.fresh([a], now=1.0) == []
    assert memory.fresh([a, b], now=2.0) == [b]
    for t in range(3, 30):  # held in view: every sighting restarts the window
        assert memory.fresh([a], now=float(t)) == []
    assert memory.fresh([b], now=30.0) == [b]  # unseen for 28 s: new again
    assert memory.fresh([], now=100.0) == [] and len(memory) == 0


def test_barcode_memory_is_bounded():
    memory = BarcodeMemory(window_s=60.0, max_codes=3)
    for i in range(10):
        memory.fresh([_code(f"code-{i}")], now=float(i))
    assert len(memory) == 3
    assert memory.fresh([_code("code-9")], now=10.0) == []
    assert memory.fresh([_code("code-0")], now=10.0) != []


def test_describe_is_one_bounded_line():
    assert describe([]) == ""
    assert describe([_code(EAN13)]) == (
        "Barcode EAN-13 4006381333931 (product code) at the centre of the view."
    )
    note = _code(
        "line one\nline two " + "x" * 200,
        "QR Code",
        Box(0, 0, 50, 50),
        kind=CodeKind.OTHER,
        check_digit_ok=None,
    )
    line = describe([note], max_chars=40)
    assert "\n" not in line and line.startswith('Barcode QR Code "line one line two x')
    assert '…" at the top left of the view.' in line and len(line) < 100
    many = describe([_code(str(i)) for i in range(6)], max_codes=4)
    assert many.count("Barcode ") == 4 and many.endswith("2 more barcodes.")


@pytest.mark.parametrize(
    ("centre", "words"),
    [
        ((0.5, 0.5), "at the centre of the view"),
        ((0.1, 0.5), "on the left of the view"),
        ((0.9, 0.5), "on the right of the view"),
        ((0.5, 0.1), "at the top of the view"),
        ((0.5, 0.9), "at the bottom of the view"),
        ((0.1, 0.1), "at the top left of the view"),
        ((0.9, 0.1), "at the top right of the view"),
        ((0.1, 0.9), "at the bottom left of the view"),
        ((0.9, 0.9), "at the bottom right of the view"),
    ],
)
def test_where_in_view(centre, words):
    x, y = centre[0] * W, centre[1] * H
    assert where_in_view(Box(int(x) - 5, int(y) - 5, int(x) + 5, int(y) + 5), (W, H)) == words


def test_box_around_clips_rotated_corners():
    box = Box.around([(-3.5, 10.2), (50.1, -2.0), (700.0, 60.0), (20.0, 490.9)], (W, H))
    assert box == Box(0, 0, W, H)
    assert Box.around([(10.4, 20.6), (30.2, 40.1)], (W, H)) == Box(10, 20, 31, 41)


# --- OCR ----------------------------------------------------------------------------


def test_ocr_none_means_no_backend():
    assert load_ocr("none") is None
    assert load_ocr("") is None
    with pytest.raises(ValueError, match="known: none, rapidocr"):
        load_ocr("tesseract")


def test_missing_rapidocr_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)
    monkeypatch.setitem(sys.modules, "rapidocr", None)
    with pytest.raises(ModelLoadError, match=r"pip install 'murmur\[ocr\]'") as caught:
        load_ocr("rapidocr")
    assert caught.value.component == "ocr"
    assert isinstance(caught.value.__cause__, ModuleNotFoundError)


class _Engine:
    """Stands in for a RapidOCR engine: records what it was given, answers in
    either flavour's shape, with boxes in the pixels of the image it was given."""

    def __init__(self, flavour: str) -> None:
        self.flavour = flavour
        self.seen: list[tuple[int, int]] = []

    def __call__(self, image: Image.Image):
        self.seen.append(image.size)
        w, h = image.size
        quad = [[w * 0.1, h * 0.2], [w * 0.5, h * 0.2], [w * 0.5, h * 0.3], [w * 0.1, h * 0.3]]
        if self.flavour == "rapidocr_onnxruntime":
            return [[quad, "EXIT", 0.93]], [0.1, 0.0, 0.1]
        return SimpleNamespace(boxes=np.array([quad]), txts=("EXIT",), scores=(0.93,))


@pytest.mark.parametrize("flavour", ["rapidocr_onnxruntime", "rapidocr"])
def test_rapidocr_stills_are_read_downscaled_and_boxes_come_back_in_still_pixels(flavour):
    engine = _Engine(flavour)
    ocr = RapidOcr(engine, flavour=flavour, max_side=1000)
    [line] = ocr.read(Image.new("RGB", (2000, 1500)))
    assert engine.seen == [(1000, 750)]
    assert (line.text, line.confidence, line.box) == ("EXIT", 0.93, Box(200, 300, 1000, 450))
    ocr.read(Image.new("RGB", (640, 480)))
    assert engine.seen[-1] == (640, 480)  # frames are read as they are


def test_rapidocr3_finding_nothing_is_no_lines():
    nothing = SimpleNamespace(boxes=None, txts=None, scores=None)
    assert RapidOcr(lambda image: nothing, flavour="rapidocr").read(Image.new("RGB", (8, 8))) == []


def _line(text: str, left: int, top: int, width: int = 100, height: int = 30, conf=0.95):
    return TextLine(text, conf, Box(left, top, left + width, top + height))


def test_reading_text_orders_rows_and_drops_doubtful_lines():
    lines = [
        _line("Exit", 100, 200),
        _line("St", 330, 204),  # the same row, a little lower: still that row
        _line("to Main", 210, 198),
        _line("PLATFORM 4", 100, 100),
        _line("~%#", 400, 400, conf=0.31),
    ]
    assert reading_text(lines) == "PLATFORM 4\nExit to Main St"
    assert reading_text([]) == ""
    assert reading_text([_line("smudge", 0, 0, conf=0.2)]) == ""


def test_reading_text_is_bounded_at_a_word():
    lines = [_line("Opening hours Monday to Friday", 0, 0), _line("nine to five", 0, 50)]
    assert reading_text(lines, max_chars=24) == "Opening hours Monday…"
    assert reading_text(lines, max_chars=40) == "Opening hours Monday to Friday\nnine to…"
    assert len(reading_text([_line("x" * 80, 0, 0)], max_chars=10)) == 10


def _rapidocr_installed() -> bool:
    return any(importlib.util.find_spec(m) for m in ("rapidocr_onnxruntime", "rapidocr"))


def _sign() -> Image.Image:
    img = Image.new("RGB", (W, H), (90, 110, 90))
    draw = ImageDraw.Draw(img)
    draw.rectangle((120, 120, 520, 330), fill=(20, 60, 160))
    font = ImageFont.load_default(size=40)
    draw.text((150, 150), "PLATFORM 4", fill="white", font=font)
    draw.text((150, 220), "Exit to Main St", fill="white", font=font)
    return img


@pytest.mark.slow  # 1–4 s on the 2-core CI machine: the models load, then one read
@pytest.mark.skipif(
    not _rapidocr_installed(),
    reason="neither rapidocr-onnxruntime nor rapidocr is installed (pip install 'murmur[ocr]')",
)
def test_rapidocr_reads_a_sign():
    ocr = load_ocr("rapidocr")
    assert ocr is not None
    lines = ocr.read(_sign())
    assert reading_text(lines).lower().split("\n") == ["platform 4", "exit to main st"]
    assert all(120 <= t.box.left and t.box.right <= 520 for t in lines)
    assert ocr.read(Image.new("RGB", (320, 240), "grey")) == []
