"""vmoe checkpoints -> ViTBackbone with sparse MoE blocks: the tiny V-MoE
ViT of the golden fixtures converts (in Python and through
`tools/convert_vmoe.py`) and reproduces vmoe's logits, routing and auxiliary
losses."""

import json

import keras
import numpy as np
import pytest
from conftest import load_npz, require_vmoe_fixtures, to_numpy

from keras_vl.layers import SparseMoeMlp
from keras_vl.models import ViTBackbone
from keras_vl.models.vit.vit_convert import convert_vmoe
from tools import convert_vmoe as convert_vmoe_tool


@pytest.fixture(scope="module")
def fixture():
    root = require_vmoe_fixtures("vit_moe")
    config = json.loads((root / "config.json").read_text())
    return root, config


def convert(root, config, mode="eval"):
    image_size = tuple(config["image_shape"][1:3])
    return convert_vmoe(
        root / "params.npz", config[f"kwargs_{mode}"], image_size
    )


def moe_blocks(vit):
    return {
        f"encoderblock_{i}": block
        for i, block in enumerate(vit.encoder.blocks)
        if isinstance(block.mlp, SparseMoeMlp)
    }


def test_eval_logits_and_losses_match_vmoe(fixture):
    root, config = fixture
    data = load_npz(root / config["runs"]["eval"]["file"])
    vit = convert(root, config)
    assert sorted(moe_blocks(vit)) == sorted(config["runs"]["eval"]["layers"])

    logits = to_numpy(vit(data["images"], training=False))
    np.testing.assert_allclose(logits, data["logits"], atol=1e-4)
    # Each MoE block adds its per-group loss averaged over the groups.
    assert len(vit.losses) == len(moe_blocks(vit))
    np.testing.assert_allclose(
        sum(to_numpy(loss) for loss in vit.losses),
        data["metrics/auxiliary_loss"].mean(),
        rtol=1e-5,
    )


def test_train_routing_matches_vmoe_with_its_noise(fixture):
    """Runs the converted layers block by block in training mode, giving
    each MoE block the noise vmoe drew."""
    root, config = fixture
    run = config["runs"]["train"]
    data = load_npz(root / run["file"])
    vit = convert(root, config, "train")
    blocks = moe_blocks(vit)

    x = vit.patch_embedding(data["images"])
    x = vit.class_token(vit.flatten(vit.position_embedding(x)))
    for i, block in enumerate(vit.encoder.blocks):
        name = f"encoderblock_{i}"
        if name not in blocks:
            x = block(x, training=True)
        else:
            y = block.norm_0(x)
            x = x + block.attention(y, y)
            y, routing = block.mlp(
                block.norm_1(x),
                noise=data[f"router/{name}/noise_standard_normal"],
                training=True,
                return_routing=True,
            )
            x = x + y
            np.testing.assert_array_equal(
                to_numpy(routing["dispatch"]), data[f"router/{name}/dispatch"]
            )
            for key in ["importance_loss", "load_loss", "auxiliary_loss"]:
                np.testing.assert_allclose(
                    to_numpy(routing[key]),
                    data[f"metrics/{name}/{key}"],
                    rtol=1e-5,
                )
        np.testing.assert_allclose(
            to_numpy(x), data[f"intermediates/{name}"], atol=1e-4
        )
    logits = vit.head(vit.encoder.norm(x)[:, 0])
    np.testing.assert_allclose(to_numpy(logits), data["logits"], atol=1e-4)


def test_cli_writes_a_preset_that_reloads(fixture, tmp_path):
    root, config = fixture
    data = load_npz(root / config["runs"]["eval"]["file"])
    kwargs = tmp_path / "kwargs.json"
    kwargs.write_text(json.dumps({"model": config["kwargs_eval"]}))
    convert_vmoe_tool.main(
        [
            "--checkpoint",
            str(root / "params.npz"),
            "--config",
            str(kwargs),
            "--image-size",
            str(config["image_shape"][1]),
            "--output",
            str(tmp_path / "preset"),
        ]
    )
    restored = ViTBackbone.from_preset(str(tmp_path / "preset"))
    assert sorted(moe_blocks(restored)) == sorted(
        config["runs"]["eval"]["layers"]
    )
    logits = restored.predict(data["images"], verbose=0)
    np.testing.assert_allclose(logits, data["logits"], atol=1e-4)


def test_config_mismatch_is_reported(fixture):
    root, config = fixture
    kwargs = json.loads(json.dumps(config["kwargs_eval"]))
    kwargs["encoder"]["moe"]["layers"] = [1]  # block 3 becomes dense
    with pytest.raises(ValueError, match="encoderblock_3/Mlp"):
        convert_vmoe(
            root / "params.npz", kwargs, tuple(config["image_shape"][1:3])
        )
    keras.backend.clear_session()
