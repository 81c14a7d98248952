"""Named LiT / SigLIP presets: checkpoint + vocabulary, converted once."""

import io
import json

import numpy as np
import pytest
from conftest import (
    load_npz,
    require_fixtures,
    serve_files,
    to_numpy,
    train_sentencepiece,
)
from model_contract import (
    dense_parameters,
    encoder_parameters,
    map_vit_parameters,
)
from test_lit_vision_transformer_convert import (
    IMAGE,
    bert_pair,
    flatten,
    random_vit,
    text_transformer_checkpoint,  # noqa: F401 (a fixture)
    tiny_config,
)

from keras_vl.layers import resample_position_embedding
from keras_vl.models import (
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)
from keras_vl.models.lit import lit_presets
from keras_vl.models.lit.lit_convert import unstack_scanned_blocks
from keras_vl.utils.download import DownloadError

LIT = ["lit_b16b", "lit_b16b_2", "lit_l16l", "lit_l16s", "lit_l16ti"]
# The table of big_vision's SigLIP demo notebook: name, checkpoint, image
# variant, resolution, text variant, embedding width, text length, vocab.
SIGLIP = [
    row.split()
    for row in """
    siglip_b16_224 webli_en_b16_224_63724782 B/16 224 B 768 64 c4_en
    siglip_b16_256 webli_en_b16_256_60500360 B/16 256 B 768 64 c4_en
    siglip_b16_384 webli_en_b16_384_68578854 B/16 384 B 768 64 c4_en
    siglip_b16_512 webli_en_b16_512_68580893 B/16 512 B 768 64 c4_en
    siglip_l16_256 webli_en_l16_256_60552751 L/16 256 L 1024 64 c4_en
    siglip_l16_384 webli_en_l16_384_63634585 L/16 384 L 1024 64 c4_en
    siglip_so400m14_224 webli_en_so400m_224_57633886 So400m/14 224 So400m
        1152 16 c4_en
    siglip_so400m14_384 webli_en_so400m_384_58765454 So400m/14 384 So400m
        1152 64 c4_en
    siglip_i18n_b16_256 webli_i18n_b16_256_66117334 B/16 256 B 768 64 mc4
    siglip_i18n_so400m16_256 webli_i18n_so400m_16_256_78061115 So400m/16
        256 So400m 1152 64 mc4
    """.replace("\n        ", " ")
    .strip()
    .splitlines()
]
VOCABULARIES = {
    "c4_en": ("gs://t5-data/vocabs/cc_en.32000/sentencepiece.model", 32_000),
    "mc4": (
        "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model",
        250_000,
    ),
}


def test_siglip_entries_are_the_demo_notebooks():
    presets = lit_presets.backbone_presets
    assert len(SIGLIP) == 10
    for name, ckpt, variant, size, text, width, length, vocab in SIGLIP:
        size, width, length = int(size), int(width), int(length)
        entry = presets[name]
        assert entry["url"] == f"gs://big_vision/siglip/{ckpt}.npz"
        assert entry["source"] == "big_vision"
        assert entry["files"]["vocabulary"]["url"] == VOCABULARIES[vocab][0]
        assert entry["files"]["vocabulary"]["filename"] == f"{vocab}.model"
        model_kwargs = entry["config"]["model_kwargs"]
        assert entry["config"]["image_size"] == size
        assert model_kwargs["image"] == {"variant": variant, "pool_type": "map"}
        assert model_kwargs["text"] == {
            "variant": text,
            "vocab_size": VOCABULARIES[vocab][1],
        }
        assert model_kwargs["out_dim"] == [None, width]
        assert model_kwargs["bias_init"] == -10.0
        assert entry["text"] == {"rules": "siglip", "sequence_length": length}


def test_lit_entries_are_vision_transformers_releases():
    presets = lit_presets.backbone_presets
    kinds = {}
    for name in LIT:
        entry = presets[name]
        release = entry["config"]
        assert release == "LiT-" + name[len("lit_") :].upper().replace(
            "TI", "Ti"
        )
        assert entry["url"] == f"gs://vit_models/lit/{release}.npz"
        vocabulary = entry["files"]["vocabulary"]
        assert vocabulary.startswith(f"gs://vit_models/lit/{release}.")
        kinds[name] = (vocabulary.rsplit(".", 1)[1], entry["text"]["rules"])
        assert entry["text"]["sequence_length"] == 16
    bert, spm = ("txt", "bert"), ("model", "lit_sentencepiece")
    assert kinds == {
        "lit_b16b": bert,
        "lit_b16b_2": bert,
        "lit_l16l": bert,
        "lit_l16s": spm,
        "lit_l16ti": spm,
    }


@pytest.mark.parametrize("cls", [LiT, LiTBackbone])
def test_presets_are_listed_with_descriptions(cls):
    names = sorted(LIT + [row[0] for row in SIGLIP])
    assert sorted(cls.presets) == names
    descriptions = {e["metadata"]["description"] for e in cls.presets.values()}
    assert len(descriptions) == len(names)
    for entry in cls.presets.values():
        assert entry["metadata"]["path"] == "lit"
    assert not set(ViTBackbone.presets) & set(names)


# === Listed parameter counts, from the sizes ===
# (width, depth, mlp_dim) of the towers.
SIZES = {
    "B": (768, 12, 3072),
    "L": (1024, 24, 4096),
    "So400m": (1152, 27, 4304),
}


def text_transformer(w, depth, mlp, vocab, length, out_dim):
    return (
        vocab * w
        + length * w
        + encoder_parameters(w, depth, mlp)
        + dense_parameters(w, out_dim)
    )


def bert(w, depth, mlp, vocab, positions, out_dim):
    # Embeddings (+ LayerNorm), post-norm blocks, keras-hub's pooler, head.
    embeddings = (vocab + positions + 2) * w + 2 * w
    blocks = encoder_parameters(w, depth, mlp, final_norm=False)
    return (
        embeddings
        + blocks
        + dense_parameters(w, w)
        + dense_parameters(w, out_dim)
    )


def test_count_formulas_match_built_backbones():
    vit = ViTBackbone(
        image_size=32,
        patch_size=16,
        width=32,
        depth=2,
        mlp_dim=64,
        num_heads=2,
        pool_type="map",
    )
    text = TextTransformer(
        vocab_size=50,
        sequence_length=8,
        width=16,
        depth=1,
        mlp_dim=24,
        num_heads=2,
        pool_type="last",
        num_classes=32,
    )
    assert LiTBackbone(vit, text).count_params() == map_vit_parameters(
        32, 2, 64, 16, 4
    ) + text_transformer(16, 1, 24, 50, 8, 32)


def test_listed_parameter_counts():
    presets = lit_presets.backbone_presets
    for name, _, variant, size, text, width, length, vocab in SIGLIP:
        patch = int(variant.split("/")[1])
        w, depth, mlp = SIZES[variant.split("/")[0]]
        image = map_vit_parameters(
            w, depth, mlp, patch, (int(size) // patch) ** 2
        )
        tw, td, tm = SIZES[text]
        texts = text_transformer(
            tw, td, tm, VOCABULARIES[vocab][1], int(length), int(width)
        )
        assert presets[name]["metadata"]["params"] == image + texts, name
    # vit_jax/models_test.py's counts, less the temperature, plus the
    # pooler keras-hub's BERT keeps (zeroed).
    published = {
        "lit_b16b": (195_871_489, 768),
        "lit_b16b_2": (195_280_897, 768),
        "lit_l16l": (638_443_521, 1024),
        "lit_l16s": (331_140_353, None),
        "lit_l16ti": (311_913_089, None),
    }
    for name, (count, bert_width) in published.items():
        pooler = dense_parameters(bert_width, bert_width) if bert_width else 0
        assert presets[name]["metadata"]["params"] == count - 1 + pooler


# === Download, convert once, cache: tiny stand-ins on 127.0.0.1 ===


def train_t5_like_vocabulary():
    """A tiny SentencePiece model with T5's special ids (pad 0, EOS 1)."""
    spm = pytest.importorskip("sentencepiece")
    proto = train_sentencepiece(
        ["a photo of a cat", "a photo of a dog", "two cats"]
    )
    processor = spm.SentencePieceProcessor()
    processor.LoadFromSerializedProto(proto)
    return proto, processor


def scanned(params, encoder):
    """`params` as big_vision saves an encoder with `scan=True`."""
    stem = f"{encoder}encoderblock_"
    out = {k: v for k, v in params.items() if not k.startswith(stem)}
    depth = 1 + max(int(k[len(stem) :].split("/")[0]) for k in params
                    if k.startswith(stem))  # fmt: skip
    for key in params:
        if key.startswith(f"{stem}0/"):
            rest = key[len(f"{stem}0/") :]
            out[f"{encoder}encoderblock/{rest}"] = np.stack(
                [params[f"{stem}{i}/{rest}"] for i in range(depth)]
            )
    return out


def test_scanned_blocks_must_share_their_depth():
    params = {
        "T/encoderblock/LayerNorm_0/bias": np.zeros((2, 4)),
        "T/encoderblock/LayerNorm_0/scale": np.ones((3, 4)),
        "T/encoder_norm/bias": np.zeros(4),
    }
    with pytest.raises(ValueError, match="one leading depth axis"):
        unstack_scanned_blocks(params, "T/")
    del params["T/encoderblock/LayerNorm_0/scale"]
    split = unstack_scanned_blocks(params, "T/")
    assert sorted(split) == [
        "T/encoder_norm/bias",
        "T/encoderblock_0/LayerNorm_0/bias",
        "T/encoderblock_1/LayerNorm_0/bias",
    ]
    assert unstack_scanned_blocks(split, "T/") is split


@pytest.fixture(scope="module")
def siglip_files():
    root = require_fixtures("lit")
    params = load_npz(root / "params.npz")
    for encoder in ("params/img/Transformer/", "params/txt/Encoder_0/"):
        params = scanned(params, encoder)
        assert f"{encoder}encoderblock/LayerNorm_0/bias" in params
    buffer = io.BytesIO()
    np.savez(buffer, **params)
    vocabulary, spm = train_t5_like_vocabulary()
    config = json.loads((root / "config.json").read_text())
    files = {"/siglip.npz": buffer.getvalue(), "/t5/c4_en.model": vocabulary}
    return files, config["model_kwargs"], load_npz(root / "io.npz"), spm


def siglip_entry(base, model_kwargs):
    return {
        "metadata": {"description": "A tiny SigLIP.", "path": "lit"},
        "url": base + "/siglip.npz",
        "files": {
            "vocabulary": {
                "url": base + "/t5/c4_en.model",
                "filename": "c4_en.model",
            }
        },
        "source": "big_vision",
        "config": {"model_kwargs": model_kwargs, "image_size": 64},
        "text": {"rules": "siglip", "sequence_length": 16},
    }


def test_siglip_preset_downloads_converts_and_encodes_strings(
    siglip_files, tmp_path, monkeypatch
):
    files, model_kwargs, io_, spm = siglip_files
    monkeypatch.setenv("KERAS_VL_CACHE", str(tmp_path / "cache"))
    with serve_files(files) as (base, requests):
        monkeypatch.setitem(
            lit_presets.backbone_presets,
            "siglip_b16_224",
            siglip_entry(base, model_kwargs),
        )
        model = LiT.from_preset("siglip_b16_224")
        assert requests == ["/t5/c4_en.model", "/siglip.npz"]
        # The scanned encoders were split into their blocks.
        # The stand-in's inputs are normal samples, not [-1, 1] pixels.
        zimg = to_numpy(model.backbone.embed_images(io_["images"]))
        assert np.abs(zimg - io_["zimg"]).max() <= 1e-4
        ztxt = model.encode_texts({"token_ids": io_["tokens"]})
        assert np.abs(ztxt - io_["ztxt"]).max() <= 1e-4
        assert model.loss_type == "sigmoid"

        # Strings: lowercased, EOS (1) sticky, padded with 1 to 16.
        pieces = spm.encode("a photo of a cat")
        expected = np.asarray([pieces + [1] * (16 - len(pieces))], "int32")
        tokens = model.preprocessor({"texts": ["A Photo of a CAT"]})
        assert to_numpy(tokens["token_ids"]).tolist() == expected.tolist()
        ztxt = model.encode_texts(["A Photo of a CAT"])
        reference = to_numpy(
            model.backbone.embed_texts({"token_ids": expected})
        )
        assert np.abs(ztxt - reference).max() <= 1e-5

        # From now on the cached preset answers, tokenizer included.
        again = LiT.from_preset("siglip_b16_224")
        assert (
            np.abs(again.encode_texts(["A Photo of a CAT"]) - ztxt).max()
            <= 1e-6
        )
        LiTBackbone.from_preset("siglip_b16_224")
        preprocessor = LiTPreprocessor.from_preset("siglip_b16_224")
        assert preprocessor.pad_id == 1 and preprocessor.image_size == (64, 64)
        assert requests == ["/t5/c4_en.model", "/siglip.npz"]

        # At another resolution: the same cached preset, its 4x4 patch
        # grid resampled to 6x6, the tokenizer kept.
        high_res = LiT.from_preset("siglip_b16_224", image_size=96)
        assert requests == ["/t5/c4_en.model", "/siglip.npz"]
        assert high_res.preprocessor.image_size == (96, 96)
        embedding = high_res.backbone.image_encoder.position_embedding
        expected_embedding = resample_position_embedding(
            to_numpy(model.backbone.image_encoder.position_embedding.embedding),
            (6, 6),
        )
        np.testing.assert_allclose(
            to_numpy(embedding.embedding), expected_embedding, atol=1e-6
        )
        assert high_res.encode_images(
            np.zeros((1, 96, 96, 3), "uint8")
        ).shape == (1, zimg.shape[1])
        assert (
            np.abs(high_res.encode_texts(["A Photo of a CAT"]) - ztxt).max()
            <= 1e-6
        )


@pytest.mark.parametrize("cut", ["/t5/c4_en.model", "/siglip.npz"])
def test_truncated_download_leaves_no_cache_entry(
    siglip_files, tmp_path, monkeypatch, cut
):
    files, model_kwargs, _, _ = siglip_files
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_VL_CACHE", str(cache))
    with serve_files(files, truncate=(cut,)) as (base, _):
        monkeypatch.setitem(
            lit_presets.backbone_presets,
            "siglip_l16_384",
            siglip_entry(base, model_kwargs),
        )
        with pytest.raises(DownloadError, match="truncated"):
            LiT.from_preset("siglip_l16_384")
    assert not (cache / "presets" / "siglip_l16_384").exists()
    assert [p for p in cache.rglob("*") if ".partial-" in p.name] == []


# [PAD]=0 [UNK]=1 [CLS]=2 [SEP]=3, words, then fillers up to BERT's 60.
BERT_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "photo", "of", "cat"]
BERT_WORDS += [f"w{i}" for i in range(60 - len(BERT_WORDS))]


def test_bert_lit_preset_encodes_strings(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    _, bert_tree, head = bert_pair(rng, 24)
    tree = {
        "img": random_vit(rng, 24),
        "txt": {"BertEncoder_0": bert_tree, "head": head},
        "t": np.array([1.7], "float32"),
    }
    buffer = io.BytesIO()
    np.savez(buffer, **flatten(tree))
    width = bert_tree["layer_norm"]["scale"].shape[0]
    text = {
        "config": {
            "hidden_size": width,
            "intermediate_dim": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
        }
    }
    files = {
        "/lit/LiT-tiny.npz": buffer.getvalue(),
        "/lit/LiT-tiny.txt": ("\n".join(BERT_WORDS) + "\n").encode(),
    }
    monkeypatch.setenv("KERAS_VL_CACHE", str(tmp_path / "cache"))
    with serve_files(files) as (base, requests):
        monkeypatch.setitem(
            lit_presets.backbone_presets,
            "lit_b16b",
            {
                "metadata": {"description": "A tiny LiT.", "path": "lit"},
                "url": base + "/lit/LiT-tiny.npz",
                "files": {"vocabulary": base + "/lit/LiT-tiny.txt"},
                "source": "vision_transformer",
                "config": tiny_config("bert", [24, 24], text),
                "text": {"rules": "bert", "sequence_length": 8},
            },
        )
        model = LiT.from_preset("lit_b16b")
        assert requests == ["/lit/LiT-tiny.txt", "/lit/LiT-tiny.npz"]
    # [CLS] a photo of a cat, then zeros; no [SEP].
    expected = np.asarray([[2, 4, 5, 6, 4, 7, 0, 0]], "int32")
    tokens = model.preprocessor({"texts": ["A Photo of a CAT"]})["token_ids"]
    assert to_numpy(tokens).tolist() == expected.tolist()
    ztxt = model.encode_texts(["A Photo of a CAT"])
    reference = to_numpy(model.backbone.embed_texts({"token_ids": expected}))
    assert np.abs(ztxt - reference).max() <= 1e-5
    assert model.preprocessor.image_size == (IMAGE, IMAGE)
    # The BERT count of `test_listed_parameter_counts`, on this tiny tower.
    image = model.backbone.image_encoder.count_params()
    text = bert(width, 2, 64, 60, 20, 24)
    assert model.backbone.count_params() == image + text


def test_sentencepiece_lit_preset_keeps_case(
    text_transformer_checkpoint,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    path, config, _ = text_transformer_checkpoint
    vocabulary, spm = train_t5_like_vocabulary()
    assert spm.GetPieceSize() <= 50  # The tiny text tower's vocabulary.
    files = {"/LiT-tiny.npz": path.read_bytes(), "/LiT-tiny.model": vocabulary}
    monkeypatch.setenv("KERAS_VL_CACHE", str(tmp_path / "cache"))
    with serve_files(files) as (base, requests):
        monkeypatch.setitem(
            lit_presets.backbone_presets,
            "lit_l16s",
            {
                "metadata": {"description": "A tiny LiT.", "path": "lit"},
                "url": base + "/LiT-tiny.npz",
                "files": {"vocabulary": base + "/LiT-tiny.model"},
                "source": "vision_transformer",
                "config": config,
                "text": {"rules": "lit_sentencepiece", "sequence_length": 8},
            },
        )
        model = LiT.from_preset("lit_l16s")
        assert requests == ["/LiT-tiny.model", "/LiT-tiny.npz"]
    # vit_jax: no lowercasing, EOS (1) appended, cut to 7, padded with EOS.
    texts = ["A Photo of a cat", "a photo of a dog a photo of two cats"]
    expected = []
    for text in texts:
        pieces = (spm.encode(text) + [1])[:7]
        expected.append(pieces + [1] * (8 - len(pieces)))
    tokens = model.preprocessor({"texts": texts})["token_ids"]
    assert to_numpy(tokens).tolist() == expected
    assert expected[0] != [*spm.encode("a photo of a cat"), 1, 1][:8]
    ztxt = model.encode_texts(texts)
    reference = to_numpy(
        model.backbone.embed_texts({"token_ids": np.asarray(expected)})
    )
    assert np.abs(ztxt - reference).max() <= 1e-5
