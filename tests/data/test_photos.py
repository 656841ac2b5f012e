"""The shared photo header check: magic bytes first, Pillow for other formats, no decoding."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image

from core.data.dataset import LoadReport
from core.data.photos import (
    PHOTO_OK,
    PHOTO_UNDECODABLE,
    PHOTO_ZERO_BYTE,
    photo_status,
    screen_photos,
)


def test_photo_status_by_header(tmp_path: Path):
    for fmt, suffix in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"),
                        ("BMP", "bmp"), ("TIFF", "tif"), ("PPM", "ppm")):  # PPM: via Pillow
        path = tmp_path / f"x.{suffix}"
        Image.new("RGB", (3, 3), "red").save(path, format=fmt)
        assert photo_status(path) == PHOTO_OK, fmt
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert photo_status(tmp_path / "empty.jpg") == PHOTO_ZERO_BYTE
    (tmp_path / "page.jpg").write_text("<!DOCTYPE html><html>Not found</html>")
    assert photo_status(tmp_path / "page.jpg") == PHOTO_UNDECODABLE
    (tmp_path / "zeros.jpg").write_bytes(bytes(512))  # a preallocated, never written file
    assert photo_status(tmp_path / "zeros.jpg") == PHOTO_UNDECODABLE
    assert photo_status(tmp_path / "gone.jpg") == PHOTO_UNDECODABLE  # cannot be opened


def test_screen_photos_counts_and_keeps_order(tmp_path: Path):
    good = tmp_path / "a.png"
    Image.new("RGB", (2, 2)).save(good)
    (tmp_path / "b.jpg").write_bytes(b"")
    frame = pd.DataFrame({"photo_id": ["a", "b", "c"], "item_id": ["1", "1", "2"],
                          "path": [str(good), str(tmp_path / "b.jpg"), str(good)]})
    report = LoadReport()
    out = screen_photos(frame, report, "somewhere")
    assert out["photo_id"].tolist() == ["a", "c"]
    assert report.counts == {"photos_zero_byte": 1, "photos_undecodable": 0}
    assert report.warnings == [f"1 photo file(s) from somewhere are empty (0 bytes); left out "
                               f"(e.g. {tmp_path / 'b.jpg'})"]
    assert screen_photos(None, report, "x") is None
