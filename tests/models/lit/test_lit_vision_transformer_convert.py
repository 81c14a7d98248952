"""google-research/vision_transformer LiT checkpoints -> `LiT`.

The released files are too large for tests, so tiny random checkpoints are
written here with exactly their naming (pre-Linen ViT names, the `vit_jax`
class-token position embedding, flaxformer BERT) and the converted model is
compared with a plain numpy forward pass of `vit_jax`'s ViT and text
transformer, and with `transformers.BertModel` for the BERT tower.
"""

import json

import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.models.lit.lit_vision_transformer_convert import (
    VISION_TRANSFORMER_LIT_CONFIGS,
    convert_vision_transformer_lit,
)
from tools import convert_big_vision

TOLERANCE = 1e-4
WIDTH, DEPTH, MLP, HEADS, PATCH, IMAGE = 32, 2, 64, 4, 8, 32

# === A numpy `vit_jax` forward pass ===


def layer_norm(x, p, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def gelu(x):
    return 0.5 * x * (1 + np.tanh(0.7978845608 * (x + 0.044715 * x**3)))


def attention(x, p):
    q, k, v = (
        np.einsum("bnd,dhk->bnhk", x, p[n]["kernel"]) + p[n]["bias"]
        for n in ("query", "key", "value")
    )
    logits = np.einsum("bqhk,bthk->bhqt", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    out = np.einsum("bhqt,bthk->bqhk", weights, v)
    return (
        np.einsum("bqhk,hkd->bqd", out, p["out"]["kernel"]) + p["out"]["bias"]
    )


def dense(x, p):
    return x @ p["kernel"] + p["bias"]


def encoder(x, tree):
    """`vit_jax` encoder blocks (pre-Linen names) and `encoder_norm`."""
    for i in range(DEPTH):
        p = tree[f"encoderblock_{i}"]
        x = x + attention(
            layer_norm(x, p["LayerNorm_0"]), p["MultiHeadDotProductAttention_1"]
        )
        y = layer_norm(x, p["LayerNorm_2"])
        mlp = p["MlpBlock_3"]
        x = x + dense(gelu(dense(y, mlp["Dense_0"])), mlp["Dense_1"])
    return layer_norm(x, tree["encoder_norm"])


def vit_forward(images, tree):
    b = images.shape[0]
    grid = images.shape[1] // PATCH
    patches = images.reshape(b, grid, PATCH, grid, PATCH, 3)
    patches = patches.transpose(0, 1, 3, 2, 4, 5).reshape(b, grid * grid, -1)
    kernel = tree["embedding"]["kernel"].reshape(-1, WIDTH)
    x = patches @ kernel + tree["embedding"]["bias"]
    x = np.concatenate([np.repeat(tree["cls"], b, 0), x], axis=1)
    x = x + tree["Transformer"]["posembed_input"]["pos_embedding"]
    x = encoder(x, tree["Transformer"])[:, 0]
    return dense(x, tree["head"]) if "head" in tree else x


def text_forward(tokens, tree):
    x = tree["Embed_0"]["embedding"][tokens] + tree["pos_embedding"]
    x = encoder(x, tree["Encoder_0"])[:, -1]
    return dense(x, tree["head"])


def normalise(z):
    return z / (np.linalg.norm(z, axis=-1, keepdims=True) + 1e-8)


# === Random checkpoints in the released naming ===


def random_block(rng):
    def n(*shape, scale=0.2):
        return (rng.standard_normal(shape) * scale).astype("float32")

    def ln():
        return {"scale": 1 + n(WIDTH), "bias": n(WIDTH)}

    dh = WIDTH // HEADS
    attn = {
        name: {"kernel": n(WIDTH, HEADS, dh), "bias": n(HEADS, dh)}
        for name in ("query", "key", "value")
    }
    attn["out"] = {"kernel": n(HEADS, dh, WIDTH), "bias": n(WIDTH)}
    return {
        "LayerNorm_0": ln(),
        "MultiHeadDotProductAttention_1": attn,
        "LayerNorm_2": ln(),
        "MlpBlock_3": {
            "Dense_0": {"kernel": n(WIDTH, MLP), "bias": n(MLP)},
            "Dense_1": {"kernel": n(MLP, WIDTH), "bias": n(WIDTH)},
        },
    }


def random_vit(rng, head_dim):
    n = (IMAGE // PATCH) ** 2

    def r(*shape):
        return (rng.standard_normal(shape) * 0.2).astype("float32")

    tree = {
        "embedding": {"kernel": r(PATCH, PATCH, 3, WIDTH), "bias": r(WIDTH)},
        "cls": r(1, 1, WIDTH),
        "Transformer": {
            "posembed_input": {"pos_embedding": r(1, n + 1, WIDTH)},
            **{f"encoderblock_{i}": random_block(rng) for i in range(DEPTH)},
            "encoder_norm": {"scale": 1 + r(WIDTH), "bias": r(WIDTH)},
        },
    }
    if head_dim:
        tree["head"] = {"kernel": r(WIDTH, head_dim), "bias": r(head_dim)}
    return tree


def random_text_transformer(rng, vocab, length, out_dim):
    def r(*shape):
        return (rng.standard_normal(shape) * 0.2).astype("float32")

    return {
        "Embed_0": {"embedding": r(vocab, WIDTH)},
        "pos_embedding": r(1, length, WIDTH),
        "Encoder_0": {
            **{f"encoderblock_{i}": random_block(rng) for i in range(DEPTH)},
            "encoder_norm": {"scale": 1 + r(WIDTH), "bias": r(WIDTH)},
        },
        "head": {"kernel": r(WIDTH, out_dim), "bias": r(out_dim)},
    }


def flatten(tree, prefix=""):
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def tiny_config(text_model, out_dim, text):
    return {
        "out_dim": out_dim,
        "image": {
            "patches": {"size": [PATCH, PATCH]},
            "hidden_size": WIDTH,
            "transformer": {
                "mlp_dim": MLP,
                "num_heads": HEADS,
                "num_layers": DEPTH,
            },
            "classifier": "token",
            "representation_size": None,
        },
        "text_model": text_model,
        "text": text,
        "pp": {"size": IMAGE, "max_len": 8},
    }


def embed(model, images, tokens):
    out = model.backbone({"images": images, "token_ids": tokens})
    return to_numpy(out["image_embeddings"]), to_numpy(out["text_embeddings"])


# === Tests ===


@pytest.fixture(scope="module")
def text_transformer_checkpoint(tmp_path_factory):
    rng = np.random.default_rng(0)
    out_dim = 24
    tree = {
        "img": random_vit(rng, out_dim),
        "txt": random_text_transformer(rng, 50, 8, out_dim),
        "t": np.array([2.5], "float32"),
    }
    path = tmp_path_factory.mktemp("lit_tt") / "LiT-tiny.npz"
    np.savez(path, **flatten(tree))
    config = tiny_config(
        "text_transformer",
        [out_dim, out_dim],
        {
            "width": WIDTH,
            "num_layers": DEPTH,
            "mlp_dim": MLP,
            "num_heads": HEADS,
            "vocab_size": 50,
        },
    )
    return path, config, tree


def test_text_transformer_lit_matches_reference(
    text_transformer_checkpoint, tmp_path
):
    from keras_vl.models.lit.lit import LiT

    path, config, tree = text_transformer_checkpoint
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    preset = tmp_path / "preset"
    convert_big_vision.main(
        [
            "--model", "lit_vit_jax",
            "--checkpoint", str(path),
            "--config", str(config_path),
            "--output", str(preset),
        ]
    )  # fmt: skip
    model = LiT.from_preset(str(preset))

    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, IMAGE, IMAGE, 3)).astype("float32")
    tokens = rng.integers(0, 50, (3, 8)).astype("int32")
    zimg, ztxt = embed(model, images, tokens)
    ref_img = normalise(vit_forward(images, tree["img"]))
    ref_txt = normalise(text_forward(tokens, tree["txt"]))
    assert np.abs(zimg - ref_img).max() <= TOLERANCE
    assert np.abs(ztxt - ref_txt).max() <= TOLERANCE
    logits = to_numpy(model.logits(zimg, ztxt))
    expected = np.exp(2.5) * ref_img @ ref_txt.T
    assert np.abs(logits - expected).max() <= 1e-3
    assert model.loss_type == "softmax"


def bert_pair(rng, out_dim):
    """A tiny `transformers.BertModel` and the same weights in flaxformer's
    `BertEncoder` naming (flattened `DenseGeneral` kernels and biases)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=60,
        hidden_size=WIDTH,
        num_hidden_layers=DEPTH,
        num_attention_heads=HEADS,
        intermediate_size=MLP,
        max_position_embeddings=20,
        hidden_act="gelu_new",  # flax's default tanh-approximated GELU
        layer_norm_eps=1e-12,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    bert = transformers.BertModel(config, add_pooling_layer=False).eval()
    with torch.no_grad():  # Larger weights make the comparison meaningful.
        for parameter in bert.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    sd = {k: v.numpy() for k, v in bert.state_dict().items()}

    def ln(name):
        return {"scale": sd[f"{name}.weight"], "bias": sd[f"{name}.bias"]}

    def lin(name):
        return {"kernel": sd[f"{name}.weight"].T, "bias": sd[f"{name}.bias"]}

    tree = {
        "embedder": {
            "embedders_token_ids": {
                "embedding": sd["embeddings.word_embeddings.weight"]
            },
            "embedders_position_ids": {
                "embedding": sd["embeddings.position_embeddings.weight"]
            },
            "embedders_segment_ids": {
                "embedding": sd["embeddings.token_type_embeddings.weight"]
            },
        },
        "layer_norm": ln("embeddings.LayerNorm"),
        "encoder_block": {"layer_sequence": {}},
    }
    for i in range(DEPTH):
        e = f"encoder.layer.{i}"
        tree["encoder_block"]["layer_sequence"][f"layers_{i}"] = {
            "attention_block": {
                "attention_layer": {
                    n: lin(f"{e}.attention.self.{n}")
                    for n in ("query", "key", "value")
                },
                "dense_layer": lin(f"{e}.attention.output.dense"),
                "layer_norm": ln(f"{e}.attention.output.LayerNorm"),
            },
            "mlp_block": {
                "mlp": {"dense_layer": lin(f"{e}.intermediate.dense")},
                "dense_layer": lin(f"{e}.output.dense"),
                "layer_norm": ln(f"{e}.output.LayerNorm"),
            },
        }
    head = {
        "kernel": (rng.standard_normal((WIDTH, out_dim)) * 0.2).astype("f4"),
        "bias": (rng.standard_normal(out_dim) * 0.2).astype("float32"),
    }
    return bert, tree, head


@pytest.mark.parametrize("image_head", [True, False], ids=["B16B", "B16B_2"])
def test_bert_lit_matches_transformers(image_head, tmp_path):
    import torch

    from keras_vl.models.lit.lit import LiT

    rng = np.random.default_rng(2)
    out_dim = 24 if image_head else WIDTH
    bert, bert_tree, head = bert_pair(rng, out_dim)
    tree = {
        "img": random_vit(rng, out_dim if image_head else None),
        "txt": {"BertEncoder_0": bert_tree, "head": head},
        "t": np.array([1.7], "float32"),
    }
    path = tmp_path / "ckpt.npz"
    np.savez(path, **flatten(tree, "params/"))
    text = {
        "config": {
            "hidden_size": WIDTH,
            "intermediate_dim": MLP,
            "num_hidden_layers": DEPTH,
            "num_attention_heads": HEADS,
        }
    }
    config = tiny_config(
        "bert", [out_dim if image_head else None, out_dim], text
    )
    convert_vision_transformer_lit(path, config).save_to_preset(
        str(tmp_path / "preset")
    )
    model = LiT.from_preset(str(tmp_path / "preset"))

    images = rng.standard_normal((3, IMAGE, IMAGE, 3)).astype("float32")
    tokens = rng.integers(1, 60, (3, 8)).astype("int32")
    tokens[0, 5:] = 0  # id 0 pads
    tokens[2, 3:] = 0
    zimg, ztxt = embed(model, images, tokens)
    with torch.no_grad():
        hidden = (
            bert(
                input_ids=torch.tensor(tokens, dtype=torch.long),
                attention_mask=torch.tensor(tokens != 0, dtype=torch.long),
            )
            .last_hidden_state[:, 0]
            .numpy()
        )
    ref_txt = normalise(dense(hidden, head))
    ref_img = normalise(vit_forward(images, tree["img"]))
    assert np.abs(ztxt - ref_txt).max() <= TOLERANCE
    assert np.abs(zimg - ref_img).max() <= TOLERANCE


def encoder_params(width, depth, mlp_dim):
    block = 4 * (width * width + width) + 2 * width * mlp_dim + mlp_dim
    return depth * (block + width + 4 * width)


def test_released_configs_have_the_published_sizes():
    # Parameter counts of vit_jax/models_test.py, from the configs' sizes.
    expected = {
        "LiT-B16B": 195_871_489,
        "LiT-B16B_2": 195_280_897,
        "LiT-L16L": 638_443_521,
        "LiT-L16S": 331_140_353,
        "LiT-L16Ti": 311_913_089,
    }
    bert_sizes = {"base": (768, 3072, 12), "large": (1024, 4096, 24)}
    for name, count in expected.items():
        config = VISION_TRANSFORMER_LIT_CONFIGS[name]
        image, text = config["image"], config["text"]
        out_img, out_txt = config["out_dim"]
        d, t = image["hidden_size"], image["transformer"]
        total = 16 * 16 * 3 * d + d + d + 197 * d + 2 * d + 1
        total += encoder_params(d, t["num_layers"], t["mlp_dim"])
        total += (d * out_img + out_img) if out_img else 0
        if config["text_model"] == "bert":
            w, mlp_dim, depth = bert_sizes[text["config"]]
            total += (30522 + 512 + 2) * w + 2 * w
            total += encoder_params(w, depth, mlp_dim)
        else:
            w = text["width"]
            total += text["vocab_size"] * w + 16 * w + 2 * w
            total += encoder_params(w, text["num_layers"], text["mlp_dim"])
        total += w * out_txt + out_txt
        assert total == count, name


def test_missing_and_unknown_names_are_reported(
    text_transformer_checkpoint, tmp_path
):
    path, config, _ = text_transformer_checkpoint
    params = dict(np.load(path))
    missing = dict(params)
    del missing["img/cls"]
    np.savez(tmp_path / "missing.npz", **missing)
    with pytest.raises(ValueError, match="'img/cls' is missing"):
        convert_vision_transformer_lit(tmp_path / "missing.npz", config)
    extra = {**params, "txt/Encoder_0/extra_param": np.zeros(2, "float32")}
    np.savez(tmp_path / "extra.npz", **extra)
    with pytest.raises(ValueError, match="txt/Encoder_0/extra_param"):
        convert_vision_transformer_lit(tmp_path / "extra.npz", config)
    with pytest.raises(ValueError, match="Unknown LiT model 'extra'"):
        convert_vision_transformer_lit(tmp_path / "extra.npz")


def test_image_size_follows_or_resamples_the_checkpoint(
    text_transformer_checkpoint,
):
    ndimage = pytest.importorskip("scipy.ndimage")
    path, config, tree = text_transformer_checkpoint
    config = {**config, "pp": {"max_len": 8}}  # No size: the checkpoint's.
    model = convert_vision_transformer_lit(path, config)
    assert model.backbone.image_size == (IMAGE, IMAGE)

    size = IMAGE + 2 * PATCH  # 4 x 4 patches -> 6 x 6.
    model = convert_vision_transformer_lit(path, config, image_size=size)
    assert model.backbone.image_size == (size, size)
    posemb = tree["img"]["Transformer"]["posembed_input"]["pos_embedding"]
    old, new = IMAGE // PATCH, size // PATCH
    grid = ndimage.zoom(
        posemb[0, 1:].reshape(old, old, -1), (new / old, new / old, 1), order=1
    )
    resampled = np.concatenate([posemb[:, :1], grid.reshape(1, -1, WIDTH)], 1)
    image_tree = dict(tree["img"])
    image_tree["Transformer"] = {
        **tree["img"]["Transformer"],
        "posembed_input": {"pos_embedding": resampled},
    }
    rng = np.random.default_rng(2)
    images = rng.standard_normal((2, size, size, 3)).astype("float32")
    tokens = rng.integers(0, 50, (2, 8)).astype("int32")
    zimg, _ = embed(model, images, tokens)
    reference = normalise(vit_forward(images, image_tree))
    assert np.abs(zimg - reference).max() <= TOLERANCE
