"""Tampered and broken presets are refused with a ValueError naming the
file and the problem, before keras-hub deserialises or reads them (configs
and assets; see `keras_vl.models.preset_files`) or, for weights, as they
are loaded. One saved tiny Clippo preset is copied and damaged per case."""

import json
import shutil

import keras
import numpy as np
import pytest
from model_contract import tiny_vit_kwargs

from keras_vl.layers import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    PresetError,
    ViTBackbone,
)

GLYPHS = "assets/text_renderer/glyph_table.npz"


def tiny_clippo(width=16):
    vit = ViTBackbone(
        **tiny_vit_kwargs(width=width, pool_type="map", num_classes=8)
    )
    backbone = ClippoBackbone(vit, TextRenderer(image_size=32))
    return Clippo(backbone, ClippoPreprocessor(32, 8))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    tiny_clippo().save_to_preset(str(root / "clippo"))
    tiny_clippo(width=24).save_to_preset(str(root / "wider"))
    return root


def edit_json(name, edit):
    def tamper(preset):
        path = preset / name
        config = json.loads(path.read_text())
        edit(config)
        path.write_text(json.dumps(config))

    return tamper


def set_nested(key, value):
    """Sets `key` in every nested dict of a config that has it."""

    def edit(config):
        stack, found = [config], False
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                if key in item:
                    item[key], found = value, True
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
        assert found, key

    return edit


def name_class(module, class_name, registered_name=None):
    def edit(config):
        config["config"]["dtype"] = {
            "module": module,
            "class_name": class_name,
            "config": {},
            "registered_name": registered_name,
        }

    return edit


def write(name, content):
    def tamper(preset):
        path = preset / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            np.savez(path, **content)

    return tamper


def truncate(name):
    def tamper(preset):
        path = preset / name
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])

    return tamper


def copy_from(other, name):
    def tamper(preset):
        shutil.copy(preset.parent / other / name, preset / name)

    return tamper


# (id, how the preset is damaged, the error message must match)
CASES = [
    (
        "class_os_system",
        edit_json("config.json", name_class("os", "system")),
        r"config\.json.*'system' of module 'os'",
    ),
    (
        "module_outside_allowed_packages",
        edit_json("task.json", name_class("subprocess.popen", "Popen")),
        r"task\.json.*'subprocess\.popen'",
    ),
    (
        "registered_outside_allowed_packages",
        edit_json(
            "config.json", name_class("keras", "DTypePolicy", "evil>Payload")
        ),
        r"config\.json.*'evil>Payload'",
    ),
    (
        "lambda",
        edit_json("task.json", name_class("keras.layers", "__lambda__")),
        r"task\.json holds a lambda",
    ),
    (
        "glyph_table_absolute_path",
        edit_json("config.json", set_nested("glyph_table", "/etc/passwd")),
        r"config\.json sets glyph_table='/etc/passwd'",
    ),
    (
        "glyph_table_parent_path",
        edit_json("task.json", set_nested("glyph_table", "../../x.npz")),
        r"task\.json sets glyph_table='\.\./\.\./x\.npz'",
    ),
    (
        "config_not_json",
        write("config.json", b"{not json"),
        r"config\.json is not valid JSON",
    ),
    (
        "glyph_table_of_other_arrays",
        write(GLYPHS, {"weights": np.zeros((2, 2))}),
        r"glyph_table\.npz",
    ),
    (
        "glyph_table_with_pickled_objects",
        write(GLYPHS, {"license": np.array([{"a": 1}], dtype=object)}),
        r"glyph_table\.npz.*not a readable",
    ),
    (
        "npz_asset_with_pickled_objects",
        write("assets/extra.npz", {"x": np.array([{"a": 1}], dtype=object)}),
        r"extra\.npz is not a readable \.npz of plain arrays",
    ),
    (
        "sentencepiece_asset_not_a_model",
        write("assets/tokenizer/vocabulary.spm", b"\x00not a proto" * 8),
        r"vocabulary\.spm is not a SentencePiece model",
    ),
    (
        "weights_truncated",
        truncate("model.weights.h5"),
        r"model\.weights\.h5.*does not fit",
    ),
    (
        "weights_of_other_shapes",
        copy_from("wider", "model.weights.h5"),
        r"model\.weights\.h5.*does not fit",
    ),
]


@pytest.mark.parametrize(
    "tamper, match", [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_tampered_preset_is_refused(saved, tmp_path, tamper, match):
    preset = saved / f"case_{tmp_path.name}"
    shutil.copytree(saved / "clippo", preset)
    tamper(preset)
    with pytest.raises(ValueError, match=match):
        Clippo.from_preset(str(preset))


def test_untampered_preset_loads(saved):
    assert isinstance(Clippo.from_preset(str(saved / "clippo")), Clippo)


@pytest.mark.parametrize("cls", [ClippoBackbone, ClippoPreprocessor])
def test_backbones_and_preprocessors_check_too(saved, tmp_path, cls):
    preset = tmp_path / "preset"
    shutil.copytree(saved / "clippo", preset)
    edit_json("preprocessor.json", name_class("os", "system"))(preset)
    with pytest.raises(PresetError, match=r"preprocessor\.json"):
        cls.from_preset(str(preset))


def test_renderer_built_from_a_path_saves_a_loadable_preset(tmp_path):
    # The glyph table travels as an asset; its path on this machine, which
    # a loaded preset would refuse, stays out of the preset's configs.
    from keras_vl.utils.glyph_table import GlyphTable

    rows = np.zeros((2, 16), np.uint16)
    rows[1] = 0xFFFF
    table = GlyphTable(np.array([ord("a")], np.int32), rows, source="tiny")
    table.save(tmp_path / "glyphs.npz")
    vit = ViTBackbone(**tiny_vit_kwargs(pool_type="map", num_classes=8))
    renderer = TextRenderer(image_size=32, glyph_table=tmp_path / "glyphs.npz")
    model = Clippo(ClippoBackbone(vit, renderer), ClippoPreprocessor(32, 8))
    model.save_to_preset(str(tmp_path / "preset"))
    restored = Clippo.from_preset(str(tmp_path / "preset"))
    assert restored.backbone.text_renderer.glyph_table.num_glyphs == 1


@keras.saving.register_keras_serializable(package="my_project")
class UserRenderer(TextRenderer):
    """A user's own layer, registered by the user's program."""


def test_classes_this_program_registered_load(tmp_path):
    vit = ViTBackbone(**tiny_vit_kwargs(pool_type="map", num_classes=8))
    backbone = ClippoBackbone(vit, UserRenderer(image_size=32))
    Clippo(backbone, ClippoPreprocessor(32, 8)).save_to_preset(
        str(tmp_path / "preset")
    )
    restored = Clippo.from_preset(str(tmp_path / "preset"))
    assert type(restored.backbone.text_renderer) is UserRenderer

    # The same registered name claiming another module is still refused.
    def claim_subprocess(config):
        renderer = config["config"]["text_renderer"]
        assert renderer["registered_name"] == "my_project>UserRenderer"
        renderer["module"] = "subprocess"

    edit_json("config.json", claim_subprocess)(tmp_path / "preset")
    with pytest.raises(PresetError, match="'UserRenderer' of module 'sub"):
        Clippo.from_preset(str(tmp_path / "preset"))
