"""MoeRouter: parity with vmoe's NoisyTopExpertsPerItemRouter, a token-loop
reference, masking, ties, bad input, config round trip, compiled path."""

import json

import keras
import numpy as np
import pytest
from conftest import VMOE, load_npz, require_vmoe_fixtures, to_numpy
from moe_reference import route_loop

from keras_vl.layers import MoeRouter
from keras_vl.layers.moe_router import expert_capacity


def _router_cases():
    path = VMOE / "router" / "cases.json"
    if not path.exists():
        return [None]  # one test that skips (or fails under CI)
    return json.loads(path.read_text())["cases"]


def _case_id(case):
    return "missing" if case is None else case["name"]


def router_for(case, **overrides):
    """A MoeRouter with the case's vmoe router and dispatcher kwargs."""
    kwargs = dict(
        num_experts=case["num_experts"],
        num_selected_experts=case["num_selected_experts"],
        capacity_factor=case["capacity_factor"],
        capacity=case["capacity"],
        capacity_rounding=case["capacity_ceil_or_round"] or "ceil",
        capacity_multiple_of=case["capacity_multiple_of"],
        batch_priority=case["batch_priority"],
        noise_std=case["noise_std"],
        importance_loss_weight=case["importance_loss_weight"],
        load_loss_weight=case["load_loss_weight"],
        gshard_loss_weight=case["gshard_loss_weight"],
    )
    kwargs.update(overrides)
    return MoeRouter(**kwargs)


@pytest.mark.parametrize("case", _router_cases(), ids=_case_id)
def test_router_matches_vmoe(case):
    root = require_vmoe_fixtures("router")
    data = load_npz(root / case["file"])
    x = data["x"]
    router = router_for(case)
    router.build(x.shape)
    router.kernel.assign(data["router_kernel"])
    training = not case["deterministic"]
    noise = data["noise_standard_normal"] if training else None

    out = router(x, noise=noise, training=training)
    out = {key: to_numpy(value) for key, value in out.items()}

    capacity = int(data["capacity"])
    assert router.expert_capacity(x.shape[1]) == capacity == case["C"]
    assert out["dispatch"].dtype == bool
    assert out["dispatch"].shape == data["dispatch"].shape
    np.testing.assert_array_equal(out["dispatch"], data["dispatch"])
    np.testing.assert_allclose(out["combine"], data["combine"], atol=1e-6)
    np.testing.assert_allclose(out["logits"], data["logits"], atol=1e-5)
    np.testing.assert_allclose(out["gates"], data["gates"], atol=1e-6)
    np.testing.assert_allclose(
        out["routing_gates"], data["dispatch_gates"], atol=1e-6
    )
    for key in case["aux_keys"]:
        name = key.split("/", 1)[1]
        np.testing.assert_allclose(
            out[name], data[key], rtol=1e-5, atol=1e-7, err_msg=key
        )
    assert ("load_loss" in out) == training
    # The layer's loss is the weighted sum averaged over the groups.
    assert len(router.losses) == 1
    np.testing.assert_allclose(
        to_numpy(router.losses[0]),
        data["aux/auxiliary_loss"].mean(),
        rtol=1e-5,
    )
    # Routing statistics.
    kept = int(out["dispatch"].sum())
    assert kept == case["num_kept"]
    np.testing.assert_allclose(
        out["dropped_fraction"],
        case["num_dropped"] / case["num_assignments"],
        atol=1e-6,
    )
    without = (~out["dispatch"].any(axis=(2, 3))).sum()
    assert without == case["num_tokens_without_expert"]
    np.testing.assert_allclose(
        out["expert_utilization"],
        data["dispatch"].sum(axis=(1, 3)).mean(0) / capacity,
        atol=1e-6,
    )


# The random tests share one shape (also that of the routing groups in
# test_sparse_moe_mlp.py), so JAX compiles each op only once.
GROUPS, SIZE, WIDTH, EXPERTS = 3, 16, 8, 4


def random_router(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    router = MoeRouter(num_experts=EXPERTS, **kwargs)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(GROUPS, SIZE, WIDTH)).astype("float32")
    noise = rng.normal(size=(GROUPS, SIZE, EXPERTS)).astype("float32")
    return router, x, noise


@pytest.mark.parametrize(
    "k, capacity, priority",
    [(1, 3, False), (2, 5, True), (3, 4, True), (EXPERTS, 3, False)],
)
def test_router_matches_token_loop(k, capacity, priority):
    router, x, _ = random_router(
        num_selected_experts=k, capacity=capacity, batch_priority=priority
    )
    valid = np.random.default_rng(1).random(x.shape[:2]) > 0.2
    out = router(x, token_mask=valid, training=True)
    gates = to_numpy(out["routing_gates"])
    dispatch, combine = route_loop(gates, k, capacity, priority, valid)
    assert dispatch.sum() < k * valid.sum()  # some choices were dropped
    np.testing.assert_array_equal(to_numpy(out["dispatch"]), dispatch)
    np.testing.assert_allclose(to_numpy(out["combine"]), combine, atol=1e-7)
    assert not to_numpy(out["dispatch"])[~valid].any()


def test_ties_go_to_the_lower_expert_and_the_earlier_token():
    # Equal tokens tie between tokens; equal kernel columns tie experts.
    router, _, _ = random_router(
        num_selected_experts=2, capacity=4, batch_priority=True
    )
    x = np.ones((GROUPS, SIZE, WIDTH), "float32")
    x[:, 6:12] = 2.0
    router.build(x.shape)
    column = np.linspace(0.1, 1.0, WIDTH, dtype="float32")[:, None]
    router.kernel.assign(column * [[0.1, 0.3, 0.3, 0.2]])
    out = router(x)
    gates = to_numpy(out["gates"])
    dispatch, _ = route_loop(gates, 2, 4, True)
    np.testing.assert_array_equal(to_numpy(out["dispatch"]), dispatch)
    # Expert 1 (not 2) is every token's first choice; the stronger tokens
    # 6..11 come first, in position order, and take its four slots.
    first = to_numpy(out["dispatch"])[:, :, 1]
    for c, token in enumerate(range(6, 10)):
        assert first[:, token, c].all()
    assert first[:, :6].sum() == 0 and first[:, 10:].sum() == 0


def test_masked_tokens_take_no_slot_and_enter_no_statistic():
    router, x, noise = random_router(
        num_selected_experts=2,
        capacity=4,
        importance_loss_weight=0.3,
        load_loss_weight=0.7,
        gshard_loss_weight=0.2,
        z_loss_weight=0.1,
    )
    valid = np.ones(x.shape[:2], bool)
    valid[:, 3:14:2] = False
    valid[1, 3] = False
    masked = router(x, token_mask=valid, noise=noise, training=True)
    masked = {key: to_numpy(value) for key, value in masked.items()}
    masked_loss = to_numpy(router.losses[0])
    assert not masked["dispatch"][~valid].any()
    np.testing.assert_allclose(
        masked_loss, masked["auxiliary_loss"].mean(), rtol=1e-6
    )

    # New values (and noise) on the masked tokens change nothing.
    rng = np.random.default_rng(5)
    x2, noise2 = x.copy(), noise.copy()
    x2[~valid] = 10 * rng.normal(size=x2[~valid].shape)
    noise2[~valid] = 10 * rng.normal(size=noise2[~valid].shape)
    again = router(x2, token_mask=valid, noise=noise2, training=True)
    for key in ["importance_loss", "load_loss", "gshard_loss", "z_loss"]:
        np.testing.assert_allclose(
            to_numpy(again[key]), masked[key], rtol=1e-6, err_msg=key
        )
    np.testing.assert_array_equal(
        to_numpy(again["dispatch"]), masked["dispatch"]
    )
    # The losses are those of the valid tokens alone (numpy formulas).
    gates = masked["gates"]
    for g in range(GROUPS):
        keep = valid[g]
        importance = gates[g, keep].sum(0)
        np.testing.assert_allclose(
            masked["importance_loss"][g],
            (importance.std() / importance.mean()) ** 2,
            rtol=1e-5,
        )
        routing = masked["routing_gates"][g, keep]
        share = np.bincount(routing.argmax(-1), minlength=EXPERTS) / keep.sum()
        np.testing.assert_allclose(
            masked["gshard_loss"][g],
            EXPERTS**2 * np.mean(share * routing.mean(0)),
            rtol=1e-5,
        )
    # A fully masked group adds nothing and does not make the loss NaN.
    valid[0] = False
    out = router(x, token_mask=valid, noise=noise, training=True)
    np.testing.assert_allclose(
        to_numpy(router.losses[0]),
        to_numpy(out["auxiliary_loss"])[1:].mean(),
        rtol=1e-6,
    )
    assert not to_numpy(out["dispatch"])[0].any()


def test_noise_is_seeded_and_only_on_in_training():
    def routed(seed, training):
        router, x, _ = random_router(seed=0)
        router = MoeRouter(num_experts=EXPERTS, seed=seed)
        router.build(x.shape)
        router.kernel.assign(np.full((WIDTH, EXPERTS), 0.1, "float32"))
        return to_numpy(router(x, training=training)["routing_gates"])

    np.testing.assert_array_equal(routed(3, True), routed(3, True))
    assert np.abs(routed(3, True) - routed(4, True)).max() > 1e-3
    clean = routed(3, False)
    # All-equal logits: clean gates are uniform, noisy ones are not.
    np.testing.assert_allclose(clean, 1 / EXPERTS, atol=1e-7)
    assert np.abs(routed(3, True) - clean).max() > 1e-3


@pytest.mark.parametrize(
    "size, k, experts, factor, rounding, multiple, expected",
    [
        (48, 2, 8, 0.7, "ceil", 4, 12),
        (48, 2, 8, 0.7, "ceil", None, 9),
        (48, 2, 8, 0.7, "round", None, 8),
        (48, 1, 4, 0.5, "ceil", 4, 8),
        (10, 1, 4, 1.0, "round", None, 2),  # 2.5 rounds half to even
        (14, 1, 4, 1.0, "round", None, 4),  # 3.5 rounds half to even
    ],
)
def test_capacity_formula(
    size, k, experts, factor, rounding, multiple, expected
):
    assert (
        expert_capacity(size, experts, k, factor, None, rounding, multiple)
        == expected
    )
    assert expert_capacity(size, experts, k, None, 5, rounding, 4) == 5


@pytest.mark.parametrize(
    "kwargs, argument",
    [
        (dict(num_experts=4, num_selected_experts=5), "num_selected_experts"),
        (dict(num_experts=0), "num_experts"),
        (dict(num_experts=4, capacity_factor=0.0), "capacity_factor"),
        (dict(num_experts=4, capacity_factor=-1.0), "capacity_factor"),
        (dict(num_experts=4, capacity=0), "capacity"),
        (dict(num_experts=4, capacity=4, capacity_factor=1.0), "capacity"),
        (dict(num_experts=4, capacity_rounding="floor"), "capacity_rounding"),
        (dict(num_experts=4, noise_std=-1.0), "noise_std"),
        (dict(num_experts=4, load_loss_weight=-0.1), "load_loss_weight"),
    ],
)
def test_bad_arguments_are_named(kwargs, argument):
    with pytest.raises(ValueError, match=f"`{argument}`"):
        MoeRouter(**kwargs)


def test_group_too_small_for_one_slot():
    router = MoeRouter(
        num_experts=8, capacity_factor=0.5, capacity_rounding="round"
    )
    with pytest.raises(ValueError, match="group_size"):
        router(np.zeros((1, 4, 3), "float32"))
    with pytest.raises(ValueError, match=r"\[G, S, D\]"):
        MoeRouter(num_experts=4)(np.zeros((4, 3), "float32"))


def test_config_round_trip():
    router = MoeRouter(
        num_experts=6,
        num_selected_experts=2,
        capacity_factor=1.5,
        capacity_rounding="round",
        capacity_multiple_of=None,
        batch_priority=True,
        noise_std=0.5,
        importance_loss_weight=0.1,
        load_loss_weight=0.2,
        gshard_loss_weight=0.3,
        z_loss_weight=0.01,
        seed=7,
    )
    config = router.get_config()
    restored = MoeRouter.from_config(config)
    assert restored.get_config() == config
    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(router)
    )
    assert isinstance(again, MoeRouter) and again.get_config() == config


def test_compiled_model_matches_eager():
    router, x, _ = random_router(num_selected_experts=2, batch_priority=True)
    inputs = keras.Input(x.shape[1:])
    outputs = router(inputs)
    model = keras.Model(inputs, [outputs["dispatch"], outputs["combine"]])
    dispatch, combine = model.predict(x, batch_size=len(x), verbose=0)
    eager = router(x)
    np.testing.assert_array_equal(dispatch, to_numpy(eager["dispatch"]))
    np.testing.assert_allclose(combine, to_numpy(eager["combine"]), atol=1e-7)
    assert dispatch.sum() > 0
