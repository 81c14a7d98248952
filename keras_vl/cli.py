"""The `keras-vl` command: demo, render, convert, zero-shot.

Examples:

    keras-vl demo
    keras-vl render "hello world" -o hello.png --image-size 224
    keras-vl convert --model vit --checkpoint vit.npz --config cfg.json \
        --output ./vit_preset
    keras-vl zero-shot --preset ./clippo_preset --labels "cat,dog" cat.png

Building the parser imports neither Keras nor a backend (the commands import
them when they run), so `--help` answers at once and without framework logs.

A user error prints one line, `keras-vl: error: ...`, and exits with status
2; `--verbose` shows its traceback instead. User errors are: bad command-line
arguments (argparse's checks and `UsageError`), and what the library raises
when it checks the files and values it is given: `ValueError` (with
`PresetError`, a malformed preset) and `FileNotFoundError`,
`IsADirectoryError`, `NotADirectoryError`. Any other exception is a bug and
keeps its traceback.
"""

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from keras_vl.version import __version__

# `--model` of `convert`: the keys of `convert_cli.BIG_VISION_CONVERTERS`,
# named here so that the parser needs no model code.
BIG_VISION_MODELS = ("clippo", "lit", "lit_vit_jax", "vit")
EXIT_USAGE = 2


class UsageError(Exception):
    """A mistake in a `keras-vl` command line, reported in one line.

    Example:

    >>> raise UsageError("`--top-k` must be >= 1, got 0")  # doctest: +SKIP
    """


USER_ERRORS = (
    UsageError,
    ValueError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
)


class _Parser(argparse.ArgumentParser):
    """Reports argument errors in the same one line as other user errors."""

    def error(self, message: str):
        command = self.prog.removeprefix("keras-vl").strip()
        hint = f"keras-vl {command} --help" if command else "keras-vl --help"
        raise UsageError(f"{message} (see `{hint}`)")


def _report(message: str) -> None:
    one_line = " ".join(str(message).split())
    print(f"keras-vl: error: {one_line}", file=sys.stderr)


def positive_int(text: str) -> int:
    """argparse type: an int >= 1.

    Example:

    >>> positive_int("3")
    3
    """
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1, got {text!r}")
    return value


def parse_labels(text: str) -> list[str]:
    """The labels of `--labels`: comma-separated, or `@path` of a text file
    with one label per line (for labels holding commas). Surrounding
    spaces and blank lines are dropped.

    Example:

    >>> parse_labels("cat, dog,a red car")
    ['cat', 'dog', 'a red car']
    """
    if text.startswith("@"):
        path = text[1:]
        if not os.path.isfile(path):
            raise UsageError(f"`--labels` file {path!r} does not exist")
        with open(path, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
        source = f"file {path!r}"
    else:
        labels = [label.strip() for label in text.split(",")]
        if not all(labels):
            raise UsageError(f"`--labels` has an empty label: {text!r}")
        source = repr(text)
    if len(labels) < 2:
        raise UsageError(
            f"`--labels` needs at least two labels, {source} has {len(labels)}"
        )
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"`--labels` repeats {', '.join(repeated)}")
    return labels


def add_big_vision_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the options of `keras-vl convert` (and of
    `tools/convert_big_vision.py`) to `parser`.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> add_big_vision_arguments(parser)
    >>> parser.parse_args(
    ...     ["--model", "vit", "--checkpoint", "v.npz", "--output", "out"]
    ... ).model
    'vit'
    """
    parser.add_argument(
        "--model",
        required=True,
        choices=BIG_VISION_MODELS,
        help="which big_vision model the checkpoint holds",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="flat .npz checkpoint"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="JSON with the big_vision model kwargs (optionally under "
        "'model_kwargs', with an 'image_size'); for lit_vit_jax also the "
        "name of a released model (default: the checkpoint's file name)",
    )
    parser.add_argument("--output", required=True, help="preset directory")
    parser.add_argument(
        "--image-size",
        type=positive_int,
        default=None,
        help="input resolution (default: the config's, else the one the "
        "checkpoint's learned position embedding was trained at, else 224); "
        "another size resamples that embedding",
    )
    parser.add_argument(
        "--sequence-length",
        type=positive_int,
        default=None,
        help="text length of LiT models (default: the checkpoint's)",
    )


def _import_quietly(module: str, args: argparse.Namespace):
    """Imports `module` (and with it Keras, its backend and TensorFlow)
    and starts the backend with file descriptor 2 on /dev/null, unless
    `--verbose`: TensorFlow's C++ start-up logs come before it reads
    `TF_CPP_MIN_LOG_LEVEL`, so only this hides them. Python errors still
    show: they propagate after."""
    if args.verbose:
        return importlib.import_module(module)
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        loaded = importlib.import_module(module)
        # TensorFlow (the input pipelines) logs a missing CUDA driver when
        # it starts its runtime, on its first tensor.
        if "tensorflow" in sys.modules:
            sys.modules["tensorflow"].constant(0)
        return loaded
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _render(args: argparse.Namespace) -> None:
    from PIL import Image

    extension = os.path.splitext(args.output)[1].lower()
    if extension not in Image.registered_extensions():
        raise UsageError(
            f"`--output` {args.output!r} needs an image extension such as "
            ".png, to say which format to write"
        )
    layers = _import_quietly("keras_vl.layers", args)
    image = layers.render_text(
        [args.text],
        image_size=args.image_size,
        monospace=args.monospace,
        lower=not args.keep_case,
    )[0]
    Image.fromarray(image).save(args.output)
    print(f"Wrote {args.output} ({image.shape[0]}x{image.shape[1]})")


def _convert(args: argparse.Namespace) -> None:
    convert_cli = _import_quietly("keras_vl.models.convert_cli", args)
    convert_cli.run_big_vision(args)


def _demo(args: argparse.Namespace) -> None:
    demo = _import_quietly("keras_vl.demo", args)
    demo.run_demo(output_dir=args.output_dir, quick=args.quick, seed=args.seed)


def _zero_shot(args: argparse.Namespace) -> None:
    labels = parse_labels(args.labels)
    missing = [path for path in args.images if not os.path.isfile(path)]
    if missing:
        raise UsageError(f"no image file at {', '.join(map(repr, missing))}")
    zero_shot_cli = _import_quietly("keras_vl.evaluation.zero_shot_cli", args)
    report = zero_shot_cli.classify_image_files(
        args.preset, labels, args.images, args.template, args.top_k
    )
    print(zero_shot_cli.format_report(report, as_json=args.json))


def build_parser() -> argparse.ArgumentParser:
    """The parser of `keras-vl`; imports no framework.

    Example:

    >>> build_parser().parse_args(["render", "hi", "-o", "hi.png"]).text
    'hi'
    """
    parser = _Parser(prog="keras-vl", description="keras_vl command line tools")
    parser.add_argument(
        "--version", action="version", version=f"keras-vl {__version__}"
    )
    verbose_help = "show the traceback of an error"
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        # Also accepted after the command; SUPPRESS keeps a `--verbose`
        # given before it.
        sub.add_argument(
            "--verbose",
            action="store_true",
            default=argparse.SUPPRESS,
            help=verbose_help,
        )
        sub.set_defaults(func=func)
        return sub

    demo = command("demo", "run the end-to-end demo", _demo)
    demo.add_argument("--output-dir", default="demo_output")
    demo.add_argument(
        "--quick", action="store_true", help="a few steps only (smoke test)"
    )
    demo.add_argument("--seed", type=int, default=0)

    render = command(
        "render", "render text as an image with the Unifont renderer", _render
    )
    render.add_argument("text")
    render.add_argument(
        "-o", "--output", required=True, help="image path, e.g. text.png"
    )
    render.add_argument("--image-size", type=positive_int, default=224)
    render.add_argument("--monospace", action="store_true")
    render.add_argument(
        "--keep-case", action="store_true", help="do not lowercase ASCII"
    )

    convert = command(
        "convert", "convert a big_vision checkpoint into a preset", _convert
    )
    add_big_vision_arguments(convert)

    zero_shot = command(
        "zero-shot",
        "classify images by their similarity to label prompts (CLIPPO, "
        "LiT, SigLIP, LIMoE presets)",
        _zero_shot,
    )
    zero_shot.add_argument(
        "--preset",
        required=True,
        help="a registered preset name or a local preset directory",
    )
    zero_shot.add_argument(
        "--labels",
        required=True,
        help="at least two labels: comma-separated, or @FILE with one label "
        "per line (for labels holding commas)",
    )
    zero_shot.add_argument(
        "--template",
        default="a photo of a {}.",
        help="prompt with one {} for the label (default: %(default)r)",
    )
    zero_shot.add_argument(
        "--top-k",
        type=positive_int,
        default=5,
        help="labels shown per image (default: %(default)s)",
    )
    zero_shot.add_argument(
        "--json", action="store_true", help="print one JSON object"
    )
    zero_shot.add_argument("images", nargs="+", metavar="IMAGE")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs `keras-vl` with `argv` (default: `sys.argv[1:]`).

    Returns 0, or 2 after a user error (see the module docstring);
    `--help` and `--version` exit with status 0.

    Example:

    >>> main(["render", "hi", "-o", "hi.png"])  # doctest: +SKIP
    0
    """
    try:
        args = build_parser().parse_args(argv)
    except UsageError as error:
        _report(error)
        return EXIT_USAGE
    if not args.verbose:
        # TensorFlow's C++ start-up logs (also imported on the JAX and
        # torch backends by keras-hub); errors still show.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        args.func(args)
    except USER_ERRORS as error:
        if args.verbose:
            traceback.print_exc()
        _report(error)
        return EXIT_USAGE
    return 0


if __name__ == "__main__":
    sys.exit(main())
