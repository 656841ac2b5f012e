"""Technique rows as data: parsing ``--techniques`` and the identity a stored run is keyed by."""

from __future__ import annotations

import pytest

from core.errors import LabError
from core.recommenders.spec import TechniqueSpec, as_specs, parse_techniques


def test_names_and_params_parse_into_rows():
    rows = parse_techniques("als:factors=64,regularization=0.5,bpr,"
                            "image:encoder=cnn:resnet101,batch=8, random")
    assert [(r.technique, r.params) for r in rows] == [
        ("als", {"factors": 64, "regularization": 0.5}), ("bpr", {}),
        ("image", {"encoder": "cnn:resnet101", "batch": 8}), ("random", {})]
    assert [r.label for r in rows] == ["als:factors=64,regularization=0.5", "bpr",
                                       "image:batch=8,encoder=cnn:resnet101", "random"]


def test_identity_ignores_the_label_and_param_order():
    a = TechniqueSpec("image", {"encoder": "cnn:vgg16", "k": 1}, label="Image (VGG)")
    b = TechniqueSpec("image", {"k": 1, "encoder": "cnn:vgg16"})
    assert a.identity() == b.identity() and a.label != b.label
    assert TechniqueSpec("image", {"encoder": "cnn:resnet101"}).identity() != b.identity()


@pytest.mark.parametrize("text, message", [
    ("factors=64", "has no technique before it"),
    ("als:factors", "write name:key=value"),
    ("als:=3", "empty parameter name"),
    ("als,als", "listed twice"),
])
def test_bad_rows_name_the_item(text, message):
    with pytest.raises(LabError, match=message):
        parse_techniques(text)


def test_names_and_specs_mix():
    rows = as_specs(["popular", TechniqueSpec("image", {"encoder": "cnn:vgg16"}, "Image VGG")])
    assert [r.label for r in rows] == ["popular", "Image VGG"]
