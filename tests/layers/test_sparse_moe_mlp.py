"""SparseMoeMlp: parity with vmoe's MlpMoeBlock, a token-loop reference,
padding and masks, the encoder's side input, bad input, config round trip,
compiled predict and fit."""

import json

import keras
import numpy as np
import pytest
from conftest import VMOE, load_npz, require_vmoe_fixtures, to_numpy
from moe_reference import moe_mlp_loop, route_loop

from keras_vl.layers import SparseMoeMlp, TransformerEncoder


def _layer_cases():
    path = VMOE / "moe_layer" / "config.json"
    if not path.exists():
        return [None]  # one test that skips (or fails under CI)
    return json.loads(path.read_text())["cases"]


def _case_id(case):
    return "missing" if case is None else case["name"]


def set_weights(layer, kernel_0, bias_0, kernel_1, bias_1, router_kernel):
    layer.kernel_0.assign(kernel_0)
    layer.bias_0.assign(bias_0)
    layer.kernel_1.assign(kernel_1)
    layer.bias_1.assign(bias_1)
    layer.router.kernel.assign(router_kernel)


@pytest.mark.parametrize("case", _layer_cases(), ids=_case_id)
def test_layer_matches_vmoe(case):
    root = require_vmoe_fixtures("moe_layer")
    data = load_npz(root / case["file"])
    params = load_npz(root / case["params_file"])
    kwargs = case["module_kwargs"]
    router = kwargs["router"]
    dispatcher = router["dispatcher"]
    layer = SparseMoeMlp(
        num_experts=kwargs["num_experts"],
        mlp_dim=kwargs["mlp_dim"],
        group_size=kwargs["group_size"],
        num_selected_experts=router["num_selected_experts"],
        capacity_factor=dispatcher["capacity_factor"],
        capacity_rounding=dispatcher["capacity_ceil_or_round"],
        capacity_multiple_of=dispatcher["capacity_multiple_of"],
        batch_priority=dispatcher["batch_priority"],
        noise_std=router["noise_std"],
        importance_loss_weight=router["importance_loss_weight"],
        load_loss_weight=router["load_loss_weight"],
        gshard_loss_weight=router["gshard_loss_weight"],
        dropout_rate=kwargs["dropout_rate"],
    )
    inputs = data["inputs"]
    layer.build(inputs.shape)
    set_weights(
        layer,
        params["Mlp/Dense_0/kernel"],
        params["Mlp/Dense_0/bias"],
        params["Mlp/Dense_1/kernel"],
        params["Mlp/Dense_1/bias"],
        params["Router/dense/kernel"],
    )
    training = not kwargs["deterministic"]
    noise = data["router/noise_standard_normal"] if training else None

    outputs, routing = layer(
        inputs, noise=noise, training=training, return_routing=True
    )

    assert layer.capacity_per_group == int(data["router/capacity"])
    np.testing.assert_array_equal(
        to_numpy(routing["dispatch"]), data["router/dispatch"]
    )
    np.testing.assert_allclose(to_numpy(outputs), data["outputs"], atol=1e-5)
    for key in case["aux_keys"]:
        np.testing.assert_allclose(
            to_numpy(routing[key.split("/", 1)[1]]),
            data[key],
            rtol=1e-5,
            atol=1e-7,
            err_msg=key,
        )
    assert len(layer.losses) == 1
    np.testing.assert_allclose(
        to_numpy(layer.losses[0]), data["aux/auxiliary_loss"].mean(), rtol=1e-5
    )


# The random tests share these shapes, so JAX compiles each op only once.
# 2 * 20 tokens do not fill whole groups of 16: the last group is padded.
BATCH, LENGTH, WIDTH, HIDDEN, EXPERTS, GROUP = 2, 20, 8, 16, 4, 16


def random_layer(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    kwargs = dict(num_experts=EXPERTS, mlp_dim=HIDDEN, group_size=GROUP) | (
        kwargs
    )
    layer = SparseMoeMlp(**kwargs)
    layer.build((BATCH, LENGTH, WIDTH))
    rng = np.random.default_rng(seed)
    # Non-trivial biases, so empty slots and dropped tokens would show.
    layer.bias_0.assign(rng.normal(size=(EXPERTS, HIDDEN)))
    layer.bias_1.assign(rng.normal(size=(EXPERTS, WIDTH)))
    x = rng.normal(size=(BATCH, LENGTH, WIDTH)).astype("float32")
    return layer, x


def loop_reference(layer, x, k, capacity, priority, valid):
    """The layer's output from the token loops, in float64."""
    weights = [
        to_numpy(w).astype("float64")
        for w in [layer.kernel_0, layer.bias_0, layer.kernel_1, layer.bias_1]
    ]
    tokens = x.reshape(-1, WIDTH).astype("float64")
    padding = -len(tokens) % GROUP
    tokens = np.concatenate([tokens, np.zeros((padding, WIDTH))])
    valid = np.concatenate([valid.reshape(-1), np.zeros(padding, bool)])
    groups = tokens.reshape(-1, GROUP, WIDTH)
    valid = valid.reshape(-1, GROUP)
    logits = groups @ to_numpy(layer.router.kernel).astype("float64")
    gates = np.exp(logits - logits.max(-1, keepdims=True))
    gates /= gates.sum(-1, keepdims=True)
    dispatch, _ = route_loop(gates, k, capacity, priority, valid)
    out = moe_mlp_loop(groups, dispatch, gates, weights)
    taken = dispatch.any(axis=(2, 3))
    keep = len(x.reshape(-1, WIDTH))
    return (
        out.reshape(-1, WIDTH)[:keep].reshape(x.shape),
        taken.reshape(-1)[:keep].reshape(x.shape[:2]),
    )


@pytest.mark.parametrize(
    "k, capacity, priority, drops",
    [(1, 2, False, True), (2, 3, True, True), (2, 8, False, False)],
)
def test_layer_matches_token_loop(k, capacity, priority, drops):
    layer, x = random_layer(
        num_selected_experts=k, capacity=capacity, batch_priority=priority
    )
    valid = np.ones(x.shape[:2], bool)
    valid[1, 15:] = False  # e.g. text padding
    outputs = to_numpy(layer(x, side_input=valid))
    expected, taken = loop_reference(layer, x, k, capacity, priority, valid)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    # Tokens no expert took (dropped or masked) add exactly 0, so a residual
    # block passes them through unchanged.
    assert (~taken & valid).any() == drops and taken.any()
    assert not taken[~valid].any()
    np.testing.assert_array_equal(outputs[~taken], 0.0)
    np.testing.assert_array_equal((x + outputs)[~taken], x[~taken])
    assert np.abs(outputs[taken]).min() > 0


def test_side_input_forms_and_padding_take_no_capacity():
    layer, x = random_layer(num_selected_experts=2, capacity=3)
    valid = np.ones(x.shape[:2], bool)
    valid[0, :7] = False
    plain, routing = layer(x, side_input=valid, return_routing=True)
    # The padded tail of the last group and the masked tokens take no slot.
    dispatch = to_numpy(routing["dispatch"]).reshape(-1, EXPERTS, 3)
    flat_valid = np.concatenate([valid.reshape(-1), np.zeros(8, bool)])
    assert dispatch.shape[0] == 48
    assert not dispatch[~flat_valid].any()
    # A 0/1 float mask and a dict with extra per-token entries agree.
    as_float = layer(x, side_input=valid.astype("float32"))
    as_dict = layer(
        x,
        side_input={"mask": valid, "modality": np.zeros(valid.shape, "int32")},
    )
    np.testing.assert_array_equal(to_numpy(as_float), to_numpy(plain))
    np.testing.assert_array_equal(to_numpy(as_dict), to_numpy(plain))
    # No side input: every real token is routed.
    unmasked, routing = layer(x, return_routing=True)
    assert to_numpy(routing["dispatch"]).reshape(-1, EXPERTS, 3)[:7].any()


def test_encoder_side_input_reaches_the_experts():
    keras.utils.set_random_seed(0)
    encoder = TransformerEncoder(
        depth=1,
        num_heads=2,
        mlp_dim=HIDDEN,
        mlp_factory=[
            SparseMoeMlp(EXPERTS, HIDDEN, GROUP, importance_loss_weight=1.0)
        ],
    )
    x = np.random.default_rng(0).normal(size=(BATCH, LENGTH, WIDTH))
    x = x.astype("float32")
    encoder(x, side_input=np.ones(x.shape[:2], bool))
    assert len(encoder.losses) == 1
    assert to_numpy(encoder.losses[0]) > 0
    # All tokens masked: the experts add nothing and there is no loss.
    masked = encoder(x, side_input=np.zeros(x.shape[:2], bool))
    assert to_numpy(encoder.losses[0]) == 0
    block = encoder.blocks[0]
    normed = block.norm_0(x)
    after_attention = x + to_numpy(block.attention(normed, normed))
    np.testing.assert_allclose(
        to_numpy(masked), to_numpy(encoder.norm(after_attention)), atol=1e-5
    )


def test_experts_are_initialised_independently():
    layer, _ = random_layer()
    kernel = to_numpy(layer.kernel_0)
    assert kernel.shape == (EXPERTS, WIDTH, HIDDEN)
    # Glorot-uniform of one [D, M] expert: limit sqrt(6 / (D + M)).
    limit = np.sqrt(6 / (WIDTH + HIDDEN))
    assert np.abs(kernel).max() <= limit
    assert np.abs(kernel).max() > 0.8 * limit
    for e in range(1, EXPERTS):
        assert np.abs(kernel[e] - kernel[0]).max() > 0.1
    assert to_numpy(layer.kernel_1).shape == (EXPERTS, HIDDEN, WIDTH)


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(num_selected_experts=EXPERTS + 1), "num_selected_experts"),
        (dict(capacity_factor=0.0), "capacity_factor"),
        (dict(group_size=0), "group_size"),
        (dict(mlp_dim=0), "mlp_dim"),
        # round(1 * 2 * 0.5 / 4) = 0 slots per group
        (
            dict(group_size=2, capacity_factor=0.5, capacity_rounding="round"),
            "group_size",
        ),
    ],
)
def test_bad_arguments_are_named(kwargs, argument):
    kwargs = dict(num_experts=EXPERTS, mlp_dim=HIDDEN, group_size=GROUP) | (
        kwargs
    )
    with pytest.raises(ValueError, match=f"`{argument}`"):
        SparseMoeMlp(**kwargs)


def test_bad_input_rank():
    layer = SparseMoeMlp(EXPERTS, HIDDEN, GROUP)
    with pytest.raises(ValueError, match=r"\[B, N, D\]"):
        layer(np.zeros((4, WIDTH), "float32"))


def test_config_round_trip_restores_the_layer():
    layer, x = random_layer(
        num_selected_experts=2,
        capacity_factor=1.5,
        capacity_multiple_of=None,
        batch_priority=True,
        noise_std=0.5,
        importance_loss_weight=0.1,
        load_loss_weight=0.2,
        z_loss_weight=0.01,
        seed=3,
    )
    config = layer.get_config()
    restored = SparseMoeMlp.from_config(config)
    assert restored.get_config() == config
    restored.build(x.shape)
    restored.set_weights(layer.get_weights())
    np.testing.assert_allclose(
        to_numpy(restored(x)), to_numpy(layer(x)), atol=1e-6
    )
    encoder = TransformerEncoder(
        depth=2, num_heads=2, mlp_dim=HIDDEN, mlp_factory=[None, layer]
    )
    again = TransformerEncoder.from_config(encoder.get_config())
    assert again.blocks[1].mlp.get_config() == config


def test_compiled_predict_and_fit():
    layer, x = random_layer(num_selected_experts=2, batch_priority=True)
    inputs = keras.Input((LENGTH, WIDTH))
    model = keras.Model(inputs, inputs + layer(inputs))
    predicted = model.predict(x, batch_size=BATCH, verbose=0)
    np.testing.assert_allclose(predicted, x + to_numpy(layer(x)), atol=1e-5)

    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    before = to_numpy(layer.router.kernel).copy()
    history = model.fit(
        x, np.zeros_like(x), batch_size=BATCH, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    # The router learns through the combine weights and the aux losses.
    assert np.abs(to_numpy(layer.router.kernel) - before).max() > 0
