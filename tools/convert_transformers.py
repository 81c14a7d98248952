"""Converts a Hugging Face SigLIP, CLIP or mT5 checkpoint to a keras_vl preset.

Usage:

    python tools/convert_transformers.py --model siglip \
        --source ./siglip-base-patch16-224 --output ./siglip_preset

`--source` is a `save_pretrained` folder (config.json + weights) or a single
`.safetensors` / `.bin` state dict (then `--config` or a `config.json` next
to it gives the config). Nothing is downloaded. `--model mt5` converts an
`MT5ForConditionalGeneration` into PaLI's language model
(`PaLILanguageModel`), for `PaLI.from_parts(language=...)`.
"""

import argparse

from keras_vl.models import convert_cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    convert_cli.add_huggingface_arguments(parser)
    convert_cli.run_huggingface(parser.parse_args(argv))


if __name__ == "__main__":
    main()
