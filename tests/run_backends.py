"""Runs the test suite once per Keras backend, the backends side by side.

`make test` and `make test-slow` call this. A JAX run spends most of its
time in single-threaded XLA compilation, so the TensorFlow and PyTorch
runs fill the other cores meanwhile instead of waiting for it; the JAX
suite, the longest, can also be split over pytest-xdist workers
(`--workers jax=2`). Every output
line is prefixed with its backend; a summary with each backend's status
and wall time comes last, and the exit status is non-zero when any backend
failed.

Usage:

    python tests/run_backends.py [--backends jax tensorflow torch]
        [--workers jax=2] [--sequential] [--allow-no-tests]
        [-- PYTEST_ARGS...]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NO_TESTS_COLLECTED = 5


def _run(backend, process, started, results, lock, allow_no_tests):
    """Streams `process`'s output, prefixed, then records its status and
    wall time."""
    width = len("tensorflow")
    for line in process.stdout:
        with lock:
            sys.stdout.write(f"[{backend:<{width}}] {line}")
            sys.stdout.flush()
    status = process.wait()
    if allow_no_tests and status == NO_TESTS_COLLECTED:
        status = 0
    results[backend] = (status, time.perf_counter() - started)


def _start(backend: str, pytest_args: list[str], basetemp: Path, workers: int):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONUNBUFFERED="1")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--basetemp={basetemp / backend}",
        *pytest_args,
    ]
    if workers > 1:
        # pytest-xdist; whole files per worker keep module fixtures shared.
        command += ["-n", str(workers), "--dist", "loadfile"]
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )


def _workers(item: str) -> tuple[str, int]:
    backend, _, count = item.partition("=")
    if not count.isdigit() or int(count) < 1:
        raise SystemExit(f"--workers wants BACKEND=N, got {item!r}")
    return backend, int(count)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--backends", nargs="+", default=["jax", "tensorflow", "torch"]
    )
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="one backend after another, stopping at the first failure",
    )
    parser.add_argument(
        "--allow-no-tests",
        action="store_true",
        help="a backend that selects no test passes (pytest's status 5)",
    )
    parser.add_argument(
        "--workers",
        nargs="*",
        default=[],
        metavar="BACKEND=N",
        help="pytest-xdist processes for a backend, e.g. jax=2 (default 1)",
    )
    parser.add_argument("pytest_args", nargs="*")
    args = parser.parse_args(argv)
    workers = dict(_workers(item) for item in args.workers)
    lock = threading.Lock()
    results = {}
    with tempfile.TemporaryDirectory(prefix="keras-vl-tests-") as basetemp:
        groups = (
            [[b] for b in args.backends] if args.sequential else [args.backends]
        )
        for group in groups:
            started = time.perf_counter()
            threads = [
                threading.Thread(
                    target=_run,
                    args=(
                        backend,
                        _start(
                            backend,
                            args.pytest_args,
                            Path(basetemp),
                            workers.get(backend, 1),
                        ),
                        started,
                        results,
                        lock,
                        args.allow_no_tests,
                    ),
                )
                for backend in group
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if any(results[b][0] for b in group):
                break
    print("=== summary")
    for backend in args.backends:
        status, seconds = results.get(backend, (None, 0.0))
        verdict = {None: "not run", 0: "passed"}.get(status, "FAILED")
        print(f"{backend:<10} {verdict:<8} {seconds:7.0f} s")
    return 0 if all(s == 0 for s, _ in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
