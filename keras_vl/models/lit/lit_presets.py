"""The released LiT and SigLIP checkpoints, with their tokenizers.

`LiT.from_preset(name)` downloads a checkpoint and the vocabulary it was
trained with, converts both once into a keras_vl preset (the tokenizer
becomes the preprocessor's, so `encode_texts` takes strings) and loads
that cached preset from then on.

Names follow `<family>[_i18n]_<image tower>_<resolution>`:

- `lit_<image><text>`: google-research/vision_transformer's LiT models
  (`gs://vit_models/lit/LiT-*.npz`), all at 224 px; `lit_b16b` is
  `LiT-B16B` (a ViT-B/16 image tower and a BERT-Base text tower).
- `siglip_<size><patch>_<resolution>`: big_vision's English SigLIP
  models (`gs://big_vision/siglip/webli_en_*.npz`), e.g. `siglip_b16_224`
  or `siglip_so400m14_384`; `siglip_i18n_*` are the multilingual ones.

Each entry holds the checkpoint `url`, the vocabulary under
`files["vocabulary"]`, the checkpoint's `source` (`"vision_transformer"`
or `"big_vision"`), the model `config` and the `text` rules
(`LiTPreprocessor.from_vocabulary` arguments). `metadata["params"]` is the
converted `LiTBackbone.count_params()` (the task's temperature and bias
are not counted; BERT towers count keras-hub's unused, zeroed pooler).
"""

_LIT_BUCKET = "gs://vit_models/lit/"
_SIGLIP_BUCKET = "gs://big_vision/siglip/"

# big_vision's `tokenize(model=...)` vocabularies. Both files are called
# `sentencepiece.model`, so each is cached under its own name.
SIGLIP_VOCABULARIES = {
    "c4_en": {
        "url": "gs://t5-data/vocabs/cc_en.32000/sentencepiece.model",
        "filename": "c4_en.model",
    },
    "mc4": {
        "url": "gs://t5-data/vocabs/mc4.250000.100extra/sentencepiece.model",
        "filename": "mc4.model",
    },
}
_SIGLIP_VOCABULARY_SIZES = {"c4_en": 32_000, "mc4": 250_000}


def _lit(release: str, rules: str, params: int, description: str) -> dict:
    suffix = ".txt" if rules == "bert" else ".model"
    return {
        "metadata": {
            "description": description,
            "params": params,
            "path": "lit",
        },
        "url": f"{_LIT_BUCKET}{release}.npz",
        "files": {"vocabulary": f"{_LIT_BUCKET}{release}{suffix}"},
        "source": "vision_transformer",
        # A name in `VISION_TRANSFORMER_LIT_CONFIGS`.
        "config": release,
        "text": {"rules": rules, "sequence_length": 16},
    }


def _siglip(
    checkpoint: str,
    variant: str,
    image_size: int,
    text_variant: str,
    embedding_dim: int,
    sequence_length: int,
    vocabulary: str,
    params: int,
    description: str,
) -> dict:
    # The model config of big_vision's SigLIP demo notebook.
    model_kwargs = {
        "image_model": "vit",
        "text_model": "proj.image_text.text_transformer",
        "image": {"variant": variant, "pool_type": "map"},
        "text": {
            "variant": text_variant,
            "vocab_size": _SIGLIP_VOCABULARY_SIZES[vocabulary],
        },
        "out_dim": [None, embedding_dim],
        "bias_init": -10.0,
        "temperature_init": 10.0,
    }
    return {
        "metadata": {
            "description": description,
            "params": params,
            "path": "lit",
        },
        "url": f"{_SIGLIP_BUCKET}{checkpoint}.npz",
        "files": {"vocabulary": SIGLIP_VOCABULARIES[vocabulary]},
        "source": "big_vision",
        "config": {"model_kwargs": model_kwargs, "image_size": image_size},
        "text": {"rules": "siglip", "sequence_length": sequence_length},
    }


def _siglip_en(checkpoint, variant, image_size, text, dim, params, length=64):
    size = variant.split("/")[0]
    return _siglip(
        checkpoint,
        variant,
        image_size,
        text,
        dim,
        length,
        "c4_en",
        params,
        f"SigLIP {variant} at {image_size} px trained on English WebLI; "
        f"{dim}-wide embeddings, {length}-token texts ({size} text tower).",
    )


backbone_presets = {
    "lit_b16b": _lit(
        "LiT-B16B",
        "bert",
        196_462_080,
        "LiT ViT-B/16 image tower with a BERT-Base text tower (both with "
        "768-wide heads), 224 px, 16 WordPiece tokens.",
    ),
    "lit_b16b_2": _lit(
        "LiT-B16B_2",
        "bert",
        195_871_488,
        "LiT ViT-B/16 with a BERT-Base text tower (second release: no "
        "image head), 224 px, 16 WordPiece tokens.",
    ),
    "lit_l16l": _lit(
        "LiT-L16L",
        "bert",
        639_493_120,
        "LiT ViT-L/16 with a BERT-Large text tower, 224 px, 16 WordPiece "
        "tokens.",
    ),
    "lit_l16s": _lit(
        "LiT-L16S",
        "lit_sentencepiece",
        331_140_352,
        "LiT ViT-L/16 with a small (384-wide) text transformer, 224 px, 16 "
        "SentencePiece tokens.",
    ),
    "lit_l16ti": _lit(
        "LiT-L16Ti",
        "lit_sentencepiece",
        311_913_088,
        "LiT ViT-L/16 with a tiny (192-wide) text transformer, 224 px, 16 "
        "SentencePiece tokens.",
    ),
    "siglip_b16_224": _siglip_en(
        "webli_en_b16_224_63724782", "B/16", 224, "B", 768, 203_155_968
    ),
    "siglip_b16_256": _siglip_en(
        "webli_en_b16_256_60500360", "B/16", 256, "B", 768, 203_202_048
    ),
    "siglip_b16_384": _siglip_en(
        "webli_en_b16_384_68578854", "B/16", 384, "B", 768, 203_447_808
    ),
    "siglip_b16_512": _siglip_en(
        "webli_en_b16_512_68580893", "B/16", 512, "B", 768, 203_791_872
    ),
    "siglip_l16_256": _siglip_en(
        "webli_en_l16_256_60552751", "L/16", 256, "L", 1024, 652_150_784
    ),
    "siglip_l16_384": _siglip_en(
        "webli_en_l16_384_63634585", "L/16", 384, "L", 1024, 652_478_464
    ),
    # The So400m/14 at 224 px reads 16-token texts; every other one 64.
    "siglip_so400m14_224": _siglip_en(
        "webli_en_so400m_224_57633886",
        "So400m/14",
        224,
        "So400m",
        1152,
        877_360_304,
        length=16,
    ),
    "siglip_so400m14_384": _siglip_en(
        "webli_en_so400m_384_58765454",
        "So400m/14",
        384,
        "So400m",
        1152,
        877_960_496,
    ),
    "siglip_i18n_b16_256": _siglip(
        "webli_i18n_b16_256_66117334",
        "B/16",
        256,
        "B",
        768,
        64,
        "mc4",
        370_626_048,
        "Multilingual SigLIP B/16 at 256 px trained on WebLI (mC4 "
        "250k vocabulary); 768-wide embeddings, 64-token texts.",
    ),
    "siglip_i18n_so400m16_256": _siglip(
        "webli_i18n_so400m_16_256_78061115",
        "So400m/16",
        256,
        "So400m",
        1152,
        64,
        "mc4",
        1_128_758_960,
        "Multilingual SigLIP So400m/16 at 256 px trained on WebLI (mC4 "
        "250k vocabulary); 1152-wide embeddings, 64-token texts.",
    ),
}
