"""The `keras-vl` command: demo, render, convert.

Examples:

    keras-vl demo
    keras-vl render "hello world" -o hello.png --image-size 224
    keras-vl convert --model vit --checkpoint vit.npz --config cfg.json \
        --output ./vit_preset
"""

import argparse
import sys


def _render(args) -> None:
    from PIL import Image

    from keras_vl.layers import render_text

    image = render_text(
        [args.text],
        image_size=args.image_size,
        monospace=args.monospace,
        lower=not args.keep_case,
    )[0]
    Image.fromarray(image).save(args.output)
    print(f"Wrote {args.output} ({image.shape[0]}x{image.shape[1]})")


def _convert(args) -> None:
    from keras_vl.models import convert_cli

    convert_cli.run_big_vision(args)


def _demo(args) -> None:
    from keras_vl.demo import run_demo

    run_demo(output_dir=args.output_dir, quick=args.quick, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-vl", description="keras_vl command line tools"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the end-to-end demo")
    demo.add_argument("--output-dir", default="demo_output")
    demo.add_argument(
        "--quick", action="store_true", help="a few steps only (smoke test)"
    )
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)

    render = commands.add_parser(
        "render", help="render text as an image with the Unifont renderer"
    )
    render.add_argument("text")
    render.add_argument("-o", "--output", required=True, help="PNG path")
    render.add_argument("--image-size", type=int, default=224)
    render.add_argument("--monospace", action="store_true")
    render.add_argument(
        "--keep-case", action="store_true", help="do not lowercase ASCII"
    )
    render.set_defaults(func=_render)

    from keras_vl.models import convert_cli

    convert = commands.add_parser(
        "convert", help="convert a big_vision checkpoint into a preset"
    )
    convert_cli.add_big_vision_arguments(convert)
    convert.set_defaults(func=_convert)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
