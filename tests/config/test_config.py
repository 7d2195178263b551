"""Config loading, _BASE_ merging, -o overrides, validation errors and building."""

import os
import textwrap

import pytest

from ppdet.config import ConfigError, create, load_config, register, validate_config


@register("backbone")
class CfgTestBackbone:
    def __init__(
        self, depth: int = 50, widths: list[int] = (1, 2), scale: float = 1.0, name_hint: str = "x"
    ):
        self.depth, self.widths, self.scale = depth, list(widths), scale
        self.out_channels = [w * 8 for w in self.widths]


@register("neck")
class CfgTestNeck:
    def __init__(self, in_channels: list[int] = (), out: int = 4):
        self.in_channels, self.out = list(in_channels), out


@register("postprocess")
class CfgTestPost:
    __shared__ = ["num_classes"]

    def __init__(self, num_classes: int = 1, thresh: float = 0.5):
        self.num_classes, self.thresh = num_classes, thresh


@register("architecture")
class CfgTestArch:
    def __init__(self, backbone, neck, post, flag: bool = False):
        self.backbone, self.neck, self.post, self.flag = backbone, neck, post, flag

    @classmethod
    def from_config(cls, args, build):
        backbone = build(args["backbone"])
        neck = build(args["neck"], in_channels=backbone.out_channels)
        return cls(backbone, neck, build(args["post"]), args.get("flag", False))


def write(tmp_path, name, text):
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return str(path)


BASE = """
architecture: CfgTestArch
num_classes: 3
CfgTestArch: {backbone: CfgTestBackbone, neck: CfgTestNeck, post: {name: CfgTestPost, thresh: 0.3}}
CfgTestBackbone: {depth: 18, widths: [1, 2, 4]}
TrainReader: {batch_size: 2, sample_transforms: [{A: {x: 1}}, {B: {y: 2}}]}
"""


def test_base_merge_is_relative_and_deep(tmp_path):
    write(tmp_path, "_base_/model.yml", BASE)
    path = write(
        tmp_path,
        "exp/run.yml",
        """
        _BASE_: [../_base_/model.yml]
        CfgTestBackbone: {depth: 34}
        """,
    )
    cfg = load_config(path)
    assert cfg["CfgTestBackbone"] == {"depth": 34, "widths": [1, 2, 4]}
    assert cfg["num_classes"] == 3
    assert cfg.source_of("CfgTestBackbone.depth").endswith("run.yml")
    assert cfg.source_of("num_classes").endswith("model.yml")


def test_overrides_reach_nested_keys_and_list_items(tmp_path):
    path = write(tmp_path, "c.yml", BASE)
    cfg = load_config(
        path,
        [
            "CfgTestBackbone.depth=101",
            "CfgTestBackbone.widths.1=7",
            "TrainReader.sample_transforms.0.A.x=5",
            "TrainReader.sample_transforms.B.y=[1, 2]",
            "weights=out/model_final",
            "new_section.flag=true",
        ],
    )
    assert cfg["CfgTestBackbone"] == {"depth": 101, "widths": [1, 7, 4]}
    assert cfg["TrainReader"]["sample_transforms"] == [{"A": {"x": 5}}, {"B": {"y": [1, 2]}}]
    assert cfg["weights"] == "out/model_final"
    assert cfg["new_section"] == {"flag": True}
    assert cfg.source_of("CfgTestBackbone") == "-o"


@pytest.mark.parametrize(
    "override, message",
    [
        ("TrainReader.sample_transforms.5.A=1", "index 5 out of range"),
        ("TrainReader.sample_transforms.C.y=1", "no list item named 'C'"),
        ("num_classes.x=1", "cannot set a key inside a int"),
        ("novalue", "must look like key.path=value"),
    ],
)
def test_bad_overrides(tmp_path, override, message):
    path = write(tmp_path, "c.yml", BASE)
    with pytest.raises(ConfigError, match=message):
        load_config(path, [override])


def one_line_error(fn):
    with pytest.raises(ConfigError) as info:
        fn()
    text = str(info.value)
    assert "\n" not in text
    return text


def test_missing_file_invalid_yaml_and_cycle(tmp_path):
    text = one_line_error(lambda: load_config(str(tmp_path / "nope.yml")))
    assert "not found" in text and "nope.yml" in text

    bad = write(tmp_path, "bad.yml", "a: [1, 2\nb: 3\n")
    text = one_line_error(lambda: load_config(bad))
    assert text.startswith(bad) and "invalid YAML" in text and "line" in text

    write(tmp_path, "a.yml", "_BASE_: [b.yml]\nx: 1\n")
    write(tmp_path, "b.yml", "_BASE_: [a.yml]\ny: 1\n")
    text = one_line_error(lambda: load_config(str(tmp_path / "a.yml")))
    assert "cycle" in text and "a.yml -> b.yml -> a.yml" in text

    child = write(tmp_path, "child.yml", "_BASE_: [missing_base.yml]\n")
    text = one_line_error(lambda: load_config(child))
    assert child in text and "missing_base.yml" in text


def test_yaml_tags_are_refused(tmp_path):
    path = write(tmp_path, "evil.yml", "x: !!python/object/apply:os.system ['echo hi']\n")
    text = one_line_error(lambda: load_config(path))
    assert "invalid YAML" in text


def test_validation_errors_name_file_and_key(tmp_path):
    path = write(tmp_path, "c.yml", BASE.replace("TrainReader", "EvalReader"))

    def load_config(path, overrides=()):  # without the reader: its transforms are not registered
        from ppdet.config import load_config as load

        cfg = load(path, overrides)
        cfg.pop("EvalReader")
        return cfg

    cfg = load_config(path, ["CfgTestBackbone.dpeth=3"])
    text = one_line_error(lambda: validate_config(cfg))
    assert (
        "-o: CfgTestBackbone.dpeth: unknown key for CfgTestBackbone; did you mean 'depth'?" in text
    )

    cfg = load_config(path)
    cfg["CfgTestBackbone"]["depth"] = "fifty"
    text = one_line_error(lambda: validate_config(cfg))
    assert text.startswith(path) and "CfgTestBackbone.depth: expected int, got 'fifty'" in text

    cfg = load_config(path, ["CfgTestBackbone.widths=[1, a]"])
    assert "expected list[int]" in one_line_error(lambda: validate_config(cfg))

    cfg = load_config(path, ["CfgTestBackbone.scale=2"])  # an int is a fine float
    validate_config(cfg)

    cfg = load_config(path, ["architecture=CfgTestArc"])
    assert "did you mean 'CfgTestArch'" in one_line_error(lambda: validate_config(cfg))

    cfg = load_config(path, ["num_clases=3"])
    assert "num_clases: unknown top-level key; did you mean 'num_classes'?" in one_line_error(
        lambda: validate_config(cfg)
    )


def test_create_builds_references_shared_keys_and_fills(tmp_path):
    cfg = load_config(write(tmp_path, "c.yml", BASE))
    arch = create("CfgTestArch", cfg["CfgTestArch"], cfg=cfg)
    assert arch.backbone.depth == 18
    assert arch.neck.in_channels == [8, 16, 32]  # filled from the backbone by from_config
    assert arch.post.thresh == 0.3 and arch.post.num_classes == 3  # inline dict + __shared__

    cfg = load_config(write(tmp_path, "d.yml", BASE), ["CfgTestArch.neck=CfgTestNek"])
    text = one_line_error(lambda: create("CfgTestArch", cfg["CfgTestArch"], cfg=cfg))
    assert "unknown class 'CfgTestNek'; did you mean 'CfgTestNeck'?" in text


def test_print_config_shows_resolved_config(tmp_path):
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    cfg = os.path.join(root, "configs", "yolov3", "yolov3_mobilenet_v1_demo.yml")
    if not os.path.isfile(cfg):
        pytest.skip("demo config not written yet")
    out = subprocess.run(
        [
            sys.executable,
            os.path.join(root, "tools", "train.py"),
            "-c",
            cfg,
            "--print-config",
            "-o",
            "TrainReader.batch_size=3",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "architecture: YOLOv3" in out and "batch_size: 3" in out


def test_unknown_transform_is_named_with_its_list_position(tmp_path):
    cfg = load_config(write(tmp_path, "c.yml", BASE))
    text = one_line_error(lambda: validate_config(cfg))
    assert "TrainReader.sample_transforms[0]: unknown transform class 'A'" in text


def test_reader_keys_are_checked(tmp_path):
    path = write(
        tmp_path,
        "c.yml",
        BASE.replace(
            "TrainReader: {batch_size: 2, sample_transforms: [{A: {x: 1}}, {B: {y: 2}}]}",
            "TrainReader: {batch_size: 2}",
        ),
    )
    cfg = load_config(path, ["TrainReader.batch_size=eight"])
    assert "TrainReader.batch_size: expected int >= 1, got 'eight'" in one_line_error(
        lambda: validate_config(cfg)
    )
    cfg = load_config(path, ["TrainReader.shufle=true"])
    assert "TrainReader.shufle: unknown reader key; did you mean 'shuffle'?" in one_line_error(
        lambda: validate_config(cfg)
    )
