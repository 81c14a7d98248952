"""CLIPPO trains the same in two JAX processes as in one.

Two processes on 127.0.0.1, one CPU device each, join through
`keras.distribution.initialize` (CPU collectives over gloo) and train a
tiny `Clippo` for two SGD steps under `keras.distribution.DataParallel`
on the 2 global devices. Each feeds its own half of every global batch
(rows 0-3, rows 4-7), from which Keras assembles the global batch, and the
contrastive loss covers the global batch. A third,
single-process run trains on the whole batches from the same initial
weights; both processes must report its per-step losses (1e-5 relative).

Every run is a subprocess (the process layout must be fixed before JAX
starts) with a time limit, so a hung collective fails the test instead of
hanging it. The three start together and compile with XLA's cheaper CPU
settings (all alike), so the check costs about one process's time.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import FAST_COMPILE_XLA_FLAGS, backend
from test_contrastive_distributed import (
    GLOBAL_BATCH,
    LOSS_RTOL,
    _data,
    _initial_weights,
    _tiny_clippo,
)

TESTS = Path(__file__).resolve().parents[1]
NUM_PROCESSES = 2
NUM_STEPS = 2
# Generous: a loaded 2-core machine took 240 s for all three processes.
TIMEOUT_S = 420

pytestmark = pytest.mark.skipif(
    backend() != "jax", reason="multi-process JAX runs on JAX only"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _global_batches():
    """`NUM_STEPS` global batches: the shared 8 pairs, then an altered copy
    (inverted pixels, texts re-paired) so the steps differ."""
    data = _data()
    images, texts = data["images"], data["texts"]
    return {
        "images": np.concatenate([images, 255 - images]),
        "texts": texts + texts[1:] + texts[:1],
    }


def _process_rows(process_id: int, num_processes: int) -> dict:
    """This process's share of every global batch: its contiguous block of
    each batch's rows, as `DataParallel` lays out a batch over devices."""
    data = _global_batches()
    share = GLOBAL_BATCH // num_processes
    rows = np.arange(NUM_STEPS * GLOBAL_BATCH).reshape(NUM_STEPS, -1)
    rows = rows[:, process_id * share : (process_id + 1) * share].ravel()
    return {
        "images": data["images"][rows],
        "texts": [data["texts"][i] for i in rows],
    }


def _train(loss: str, process_id: int = 0, num_processes: int = 1):
    """Trains a tiny CLIPPO for `NUM_STEPS` SGD steps on `GLOBAL_BATCH`
    pairs each, this process feeding its share of each batch, and returns
    the loss `fit` reports after each step (the running mean over the
    steps so far)."""
    import tensorflow as tf

    initial, _ = _initial_weights(loss)
    model = _tiny_clippo(loss)
    model.set_weights(initial)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    # Keras assembles the global batch from the processes' shares.
    dataset = tf.data.Dataset.from_tensor_slices(
        _process_rows(process_id, num_processes)
    ).batch(GLOBAL_BATCH // num_processes)
    losses = []
    record = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda _, logs: losses.append(float(logs["loss"]))
    )
    model.fit(dataset, shuffle=False, verbose=0, callbacks=[record])
    return losses


def _report_process(loss: str, port: int, process_id: int) -> dict:
    """One of the `NUM_PROCESSES` processes of the distributed run."""
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize(
        job_addresses=f"127.0.0.1:{port}",
        num_processes=NUM_PROCESSES,
        process_id=process_id,
    )
    # Keras cannot shard a dataset itself once the preprocessor is mapped
    # over it (its batch size is then unknown): each process feeds its own
    # share instead.
    keras.distribution.set_distribution(
        keras.distribution.DataParallel(auto_shard_dataset=False)
    )
    return {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "devices": jax.device_count(),
        "local_devices": jax.local_device_count(),
        "losses": _train(loss, process_id, NUM_PROCESSES),
    }


def _report_single(loss: str) -> dict:
    """The reference: one process, one device, the whole batches."""
    return {"losses": _train(loss)}


_SCRIPT = """
import json, sys
sys.path[:0] = [{tests!r}, {models!r}, {repo!r}]
import test_multiprocess_jax as module
print("REPORT " + json.dumps(module.{function}(*{args!r})))
"""


def _start(function: str, *args) -> subprocess.Popen:
    script = _SCRIPT.format(
        tests=str(TESTS),
        models=str(TESTS / "models"),
        repo=str(TESTS.parent),
        function=function,
        args=args,
    )
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        # One CPU device per process, whatever the caller's flags ask.
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1 "
        + FAST_COMPILE_XLA_FLAGS,
    }
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        cwd=TESTS.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _reports(processes: list[subprocess.Popen]) -> list[dict]:
    """Waits for every process (killing all of them on a time-out or a
    failure, as a process left alone waits on its peer) and returns the
    JSON each printed on its last `REPORT ` line."""
    try:
        outputs = [p.communicate(timeout=TIMEOUT_S) for p in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    reports = []
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        lines = [
            line for line in stdout.splitlines() if line.startswith("REPORT ")
        ]
        assert process.returncode == 0 and lines, stderr[-4000:]
        reports.append(json.loads(lines[-1][len("REPORT ") :]))
    return reports


@pytest.mark.parametrize("loss", ["softmax"])
def test_two_processes_report_the_single_process_losses(loss):
    port = _free_port()
    processes = [
        _start("_report_process", loss, port, i) for i in range(NUM_PROCESSES)
    ]
    processes.append(_start("_report_single", loss))
    *distributed, single = _reports(processes)

    expected = single["losses"]
    assert len(expected) == NUM_STEPS, single
    # The steps train: the loss moves from step to step.
    assert max(expected) - min(expected) > 1e-3, expected
    for i, report in enumerate(distributed):
        assert report["process_index"] == i, report
        assert report["process_count"] == NUM_PROCESSES, report
        assert report["local_devices"] == 1, report
        assert report["devices"] == NUM_PROCESSES, report
        np.testing.assert_allclose(
            report["losses"], expected, rtol=LOSS_RTOL, err_msg=f"process {i}"
        )
