"""The distributed-training guide, run in its quick (smoke test) mode.

Each backend checks its own sections against the one-device run of the
same steps from the same weights: losses within 1e-5 relative and trained
weights within 1e-5 absolute.

- JAX: data parallelism on 8 simulated host devices and tensor + expert
  parallelism on a 4 x 2 mesh. The device count must be fixed before JAX
  starts, so the guide runs in a fresh process.
- TensorFlow: `MirroredStrategy` over 2 logical CPUs, likewise in a fresh
  process (logical devices are fixed when TensorFlow's runtime starts).
- PyTorch: accumulation with every negative, in this process (it compiles
  nothing), and the loss Keras' own accumulation would use instead.
"""

import json
import math
import os

import pytest
from conftest import REPO_ROOT, backend, load_guide, run_report

TOLERANCE = 1e-5

_SCRIPT = """
import importlib.util, json, sys
sys.path.insert(0, {repo!r})
spec = importlib.util.spec_from_file_location("guide", {path!r})
guide = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guide)
print("REPORT " + json.dumps(guide.main(["--quick"])))
"""


def _run_guide_in_subprocess(extra_env: dict[str, str]) -> dict:
    script = _SCRIPT.format(
        repo=str(REPO_ROOT),
        path=str(REPO_ROOT / "guides" / "distributed_training.py"),
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra_env}
    return run_report(script, env)


def _check_same_steps(section: dict, reference: dict, name: str) -> None:
    assert section["reference_losses"] == reference["reference_losses"]
    assert len(section["losses"]) == len(reference["reference_losses"]) == 1
    assert all(math.isfinite(x) for x in section["losses"]), section
    assert section["loss_gap"] <= TOLERANCE, (name, section)
    assert section["weight_gap"] <= TOLERANCE, (name, section)
    # The gaps are small against what the step changed.
    assert reference["reference_change"] > 1e3 * TOLERANCE, reference


def _check_commands(commands: dict) -> None:
    assert "keras.distribution.initialize()" in commands["train_script"]
    assert "--worker=all" in commands["tpu_pod"]
    assert "KERAS_DISTRIBUTION_PROCESS_ID=1" in commands["gpu_hosts"]


@pytest.mark.skipif(backend() != "jax", reason="the JAX sections")
def test_quick_guide_data_and_model_parallel_steps_match_one_device():
    flags = os.environ.get("XLA_FLAGS", "")
    results = _run_guide_in_subprocess(
        {
            "KERAS_BACKEND": "jax",
            "JAX_PLATFORMS": "cpu",
            # Less LLVM optimisation: compiling the steps dominates.
            "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=8"
            " --xla_backend_optimization_level=0"
            " --xla_llvm_disable_expensive_passes=true",
        }
    )
    assert results["backend"] == "jax"
    assert results["data_parallel"]["devices"] == 8
    _check_same_steps(results["data_parallel"], results, "DataParallel")

    parallel = results["model_parallel"]
    assert parallel["mesh"] == [4, 2]
    _check_same_steps(parallel, results, "ModelParallel")
    split = parallel["split"]
    # Weights are split over the model axis only, and each kind as meant:
    # q/k/v by heads, the dense MLP by hidden units, experts by expert.
    assert all(
        set(axes) <= {None, "model"} and "model" in axes
        for axes in split.values()
    ), split
    by_suffix = {path.rsplit("/", 1)[-1]: axes for path, axes in split.items()}
    assert by_suffix["kernel_0"] == ["model", None, None], split
    assert by_suffix["bias_1"] == ["model", None], split
    query = [p for p in split if p.endswith("query/kernel")]
    assert query and all(split[p] == [None, "model", None] for p in query)
    assert any(p.endswith("Dense_0/kernel") for p in split), split
    assert not any("Router" in p for p in split), split

    assert results["accumulation"] is None  # run on PyTorch
    assert results["mirrored"] is None
    _check_commands(results["commands"])


@pytest.mark.skipif(backend() != "tensorflow", reason="tf.distribute")
def test_quick_guide_mirrored_strategy_matches_one_device():
    results = _run_guide_in_subprocess({"KERAS_BACKEND": "tensorflow"})
    assert results["backend"] == "tensorflow"
    assert results["mirrored"]["replicas"] == 2
    _check_same_steps(results["mirrored"], results, "MirroredStrategy")
    assert results["data_parallel"] is None
    assert results["model_parallel"] is None
    _check_commands(results["commands"])


@pytest.mark.skipif(backend() != "torch", reason="compiles nothing on torch")
def test_quick_guide_accumulation_keeps_every_negative(capsys):
    results = load_guide("distributed_training").main(["--quick"])
    json.dumps(results)  # plain data, as the subprocess tests need
    accumulated = results["accumulation"]
    _check_same_steps(accumulated, results, "accumulation_steps=4")
    # The whole batch's contrastive loss is the step's (which adds LIMoE's
    # small routing losses); each micro-batch alone, with 1 negative
    # instead of 7, scores far lower: Keras' accumulation is another loss.
    whole = accumulated["whole_batch_loss"]
    assert abs(whole - results["reference_losses"][0]) < 0.05, accumulated
    assert whole - accumulated["micro_batch_loss"] > 0.5, accumulated
    printed = capsys.readouterr().out
    assert "KERAS_BACKEND=jax python guides/distributed_training.py" in printed
    assert "KERAS_BACKEND=tensorflow python" in printed
