"""Benchmarks PaLI's cached greedy decoding against decoding without a
cache and against transformers' `MT5ForConditionalGeneration.generate`.

One model, three decoders, side by side in one process:

- `keras_vl cached`: `PaLI.generate` with the greedy sampler (one encoder
  pass, then one decoder token per step over the self-attention cache;
  cross-attention keys and values computed once), on `KERAS_BACKEND`.
- `keras_vl uncached`: the same model re-run whole at every step (encoder
  and the full decoder sequence, `predict_on_batch`), taking the argmax of
  the newest position: what decoding costs without a cache.
- `transformers`: a random `MT5ForConditionalGeneration` (torch, CPU,
  `num_beams=1`, `use_cache=True`), the one the keras_vl model is converted
  from (`convert_mt5`, weights identical), fed the same encoder input as
  `inputs_embeds`: the image tokens (a tiny ViT, projected) followed by the
  embedded prompt.

The language model is mT5-like at a small size (`--hidden-dim 512`,
`--layers 6` + 6, 8 heads of 64, feed-forward 1024, vocabulary 32k); the
encoder input is fixed (batch 1, 16 image tokens and a 16-token prompt).
No stop token: every run writes exactly `n` new tokens, `n` in
`--lengths`, and the per-token time is the whole call's time over `n`. Each
timing is the median of `--repeats` calls after one warm-up call (which
compiles), with the rows interleaved so load changes hit them alike.

FLOPs per new token are the decoder's matmuls (2 per multiply-add): per
layer `2 D (4 H Dh)` for self-attention, `2 D (2 H Dh)` for the
cross-attention query and output, `2 * 3 D F` for the gated feed-forward,
plus `2 * 2 H Dh (t + S)` for the scores and values over the `t` cached
and `S` encoder positions, and `2 D V` for the logits. Achieved FLOP/s is
divided by the float32 matmul ceiling measured in the same run.

Targets: cached tokens/s >= 1x transformers' at every length, on the JAX
and on the torch backend; cached per-token time flat in length (256 new
tokens within 1.3x of 16).

Usage:

    KERAS_BACKEND=jax python benchmarks/generate.py
    KERAS_BACKEND=torch python benchmarks/generate.py
"""

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass, field

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from matmul_ceiling import (  # noqa: E402
    jax_matmul_ceiling,
    torch_matmul_ceiling,
)

from keras_vl.models import PaLI, PaLIBackbone, ViTBackbone  # noqa: E402
from keras_vl.models.pali.pali_convert import convert_mt5  # noqa: E402

IMAGE_SIZE, PATCH_SIZE, PROMPT_LENGTH = 64, 16, 16


@dataclass
class Config:
    hidden_dim: int = 512
    layers: int = 6
    heads: int = 8
    head_dim: int = 64
    feed_forward: int = 1024
    vocabulary: int = 32000
    lengths: tuple = (16, 64, 256)
    uncached_max_length: int = 64
    repeats: int = 3

    @property
    def encoder_length(self) -> int:
        return (IMAGE_SIZE // PATCH_SIZE) ** 2 + PROMPT_LENGTH

    def flops_per_token(self, position: int) -> float:
        d, a = self.hidden_dim, self.heads * self.head_dim
        per_layer = (
            2 * d * 4 * a
            + 2 * d * 2 * a
            + 2 * 3 * d * self.feed_forward
            + 2 * 2 * a * (position + self.encoder_length)
        )
        return self.layers * per_layer + 2 * d * self.vocabulary

    def flops(self, new_tokens: int) -> float:
        return sum(self.flops_per_token(t + 1) for t in range(new_tokens))


@dataclass
class Row:
    name: str
    decode: object  # new_tokens -> token ids [1, new_tokens]
    max_length: int
    times: dict = field(default_factory=dict)


def build_models(config: Config):
    """A random mT5 in transformers and the keras_vl PaLI holding its
    weights, plus one fixed encoder input."""
    import torch
    import transformers

    torch.manual_seed(0)
    hf = transformers.MT5ForConditionalGeneration(
        transformers.MT5Config(
            vocab_size=config.vocabulary,
            d_model=config.hidden_dim,
            d_kv=config.head_dim,
            d_ff=config.feed_forward,
            num_layers=config.layers,
            num_decoder_layers=config.layers,
            num_heads=config.heads,
            dropout_rate=0.0,
            feed_forward_proj="gated-gelu",
            decoder_start_token_id=0,
            tie_word_embeddings=False,
        )
    ).eval()
    hf.generation_config.eos_token_id = None  # write every token asked
    hf.generation_config.pad_token_id = 0
    language = convert_mt5(hf.state_dict(), hf.config.to_dict())
    keras.utils.set_random_seed(0)
    vision = ViTBackbone(
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        width=128,
        depth=1,
        num_heads=2,
        pool_type="none",
    )
    backbone = PaLIBackbone(
        vision, language, max_encoder_length=config.encoder_length
    )
    model = PaLI(backbone, compile=False)
    model.compile(sampler="greedy")

    rng = np.random.default_rng(0)
    inputs = {
        "images": rng.uniform(-1, 1, (1, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(
            "float32"
        ),
        "encoder_token_ids": rng.integers(
            2, config.vocabulary, (1, PROMPT_LENGTH)
        ).astype("int32"),
        "encoder_padding_mask": np.ones((1, PROMPT_LENGTH), bool),
    }
    return hf, model, inputs


def encoder_embeddings(model: PaLI, inputs: dict) -> np.ndarray:
    """What PaLI's encoder reads: projected image tokens, then the
    embedded prompt."""
    x, _ = model.backbone.encoder_embeddings(
        inputs["images"],
        inputs["encoder_token_ids"],
        inputs["encoder_padding_mask"],
    )
    return keras.ops.convert_to_numpy(x)


def cached(model: PaLI, inputs: dict):
    def decode(new_tokens):
        out = model.generate(
            inputs, max_length=new_tokens + 1, stop_token_ids=None
        )
        return np.asarray(out["decoder_token_ids"])[:, 1:]

    return decode


def uncached(model: PaLI, inputs: dict):
    def decode(new_tokens):
        ids = np.zeros((1, new_tokens + 1), "int32")
        batch = {
            **inputs,
            "decoder_token_ids": ids,
            "decoder_padding_mask": np.ones_like(ids, bool),
        }
        for step in range(new_tokens):
            logits = model.predict_on_batch(batch)
            ids[:, step + 1] = np.asarray(logits)[:, step].argmax(-1)
        return ids[:, 1:]

    return decode


def transformers_generate(hf, embeddings: np.ndarray):
    import torch

    inputs_embeds = torch.from_numpy(embeddings)
    mask = torch.ones(embeddings.shape[:2], dtype=torch.long)

    def decode(new_tokens):
        with torch.no_grad():
            out = hf.generate(
                inputs_embeds=inputs_embeds,
                attention_mask=mask,
                max_new_tokens=new_tokens,
                num_beams=1,
                do_sample=False,
                use_cache=True,
            )
        return out.numpy()[:, 1:]

    return decode


def timed(decode, new_tokens) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    tokens = decode(new_tokens)
    return time.perf_counter() - start, tokens


def matmul_ceiling() -> float:
    if keras.backend.backend() == "jax":
        return jax_matmul_ceiling()
    return torch_matmul_ceiling()


def run(config: Config) -> dict:
    hf, model, inputs = build_models(config)
    top = max(config.lengths)
    rows = [
        Row("keras_vl cached", cached(model, inputs), top),
        Row(
            "keras_vl uncached",
            uncached(model, inputs),
            config.uncached_max_length,
        ),
        Row(
            "transformers",
            transformers_generate(hf, encoder_embeddings(model, inputs)),
            top,
        ),
    ]
    longest = {}  # each row's longest output, to check the tokens agree
    for row in rows:  # warm-up: compiles
        for n in config.lengths:
            if n <= row.max_length:
                _, longest[row.name] = timed(row.decode, n)
    for _ in range(config.repeats):
        for n in config.lengths:
            for row in rows:
                if n <= row.max_length:
                    seconds, _ = timed(row.decode, n)
                    row.times.setdefault(n, []).append(seconds)
    reference = longest["transformers"]
    agree = {
        name: int(
            (tokens[0, : reference.shape[1]] == reference[0, : tokens.shape[1]])
            .cumprod()
            .sum()
        )
        for name, tokens in longest.items()
    }
    ceiling = matmul_ceiling()
    table = {}
    for row in rows:
        table[row.name] = {
            str(n): {
                "ms_per_token": 1e3 * statistics.median(row.times[n]) / n,
                "mfu": config.flops(n)
                / statistics.median(row.times[n])
                / ceiling,
            }
            for n in row.times
        }
    return {
        "backend": keras.backend.backend(),
        "config": {
            "hidden_dim": config.hidden_dim,
            "layers": config.layers,
            "heads": config.heads,
            "feed_forward": config.feed_forward,
            "vocabulary": config.vocabulary,
            "encoder_length": config.encoder_length,
            "repeats": config.repeats,
        },
        "matmul_ceiling_gflops": ceiling / 1e9,
        "leading_tokens_equal_to_transformers": agree,
        "rows": table,
    }


def print_table(result: dict) -> None:
    rows = result["rows"]
    ours, hf = rows["keras_vl cached"], rows["transformers"]
    lengths = list(ours)
    print(
        f"\nPaLI greedy decoding, backend {result['backend']}: "
        f"{result['config']}, float32 matmul ceiling "
        f"{result['matmul_ceiling_gflops']:.1f} GFLOP/s"
    )
    print(
        f"{'new tokens':>10} | {'cached ms/tok':>13} | "
        f"{'uncached ms/tok':>15} | {'transformers ms/tok':>19} | "
        f"{'tok/s ours / transformers':>25} | {'cached MFU':>10}"
    )
    for n in lengths:
        plain = rows["keras_vl uncached"].get(n)
        plain = f"{plain['ms_per_token']:15.2f}" if plain else f"{'-':>15}"
        ratio = hf[n]["ms_per_token"] / ours[n]["ms_per_token"]
        print(
            f"{n:>10} | {ours[n]['ms_per_token']:13.2f} | {plain} | "
            f"{hf[n]['ms_per_token']:19.2f} | {ratio:25.2f} | "
            f"{100 * ours[n]['mfu']:9.2f}%"
        )
    flat = ours[lengths[-1]]["ms_per_token"] / ours[lengths[0]]["ms_per_token"]
    print(
        f"cached per-token time, {lengths[-1]} / {lengths[0]} new tokens: "
        f"{flat:.2f} (target <= 1.3)"
    )
    print(
        "leading tokens equal to transformers' greedy output: "
        f"{result['leading_tokens_equal_to_transformers']}"
    )


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden-dim", type=int, default=512)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--feed-forward", type=int, default=1024)
    parser.add_argument("--vocabulary", type=int, default=32000)
    parser.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument(
        "--uncached-max-length",
        type=int,
        default=64,
        help="longest output decoded without a cache (its cost is quadratic)",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", help="also write the results as JSON")
    args = parser.parse_args(argv)
    config = Config(
        hidden_dim=args.hidden_dim,
        layers=args.layers,
        heads=args.heads,
        head_dim=args.hidden_dim // args.heads,
        feed_forward=args.feed_forward,
        vocabulary=args.vocabulary,
        lengths=tuple(sorted(args.lengths)),
        uncached_max_length=args.uncached_max_length,
        repeats=args.repeats,
    )
    result = run(config)
    print_table(result)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
