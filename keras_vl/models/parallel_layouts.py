"""Tensor- and expert-parallel weight layouts for `keras.distribution`.

A backbone's `get_layout_map(device_mesh)` returns a `LayoutMap` for
`keras.distribution.ModelParallel`: the batch is split over the mesh's
data axis, and the large kernels over its model axis, Megatron-style:

- attention: the query, key and value projections are split by heads
  (each device computes whole heads), the output projection by its input
  heads, so one all-reduce per attention block sums the partial outputs;
- MLPs: the first kernel (and bias) by hidden units, the second by its
  input rows, so again one all-reduce per block;
- sparse mixtures of experts: every expert weight by its leading expert
  axis (expert parallelism), so each device holds whole experts;
- mT5 (PaLI's language model): the same splits for its bias-free
  projections and gated MLP, and the vocabulary axis of the token
  embedding and of the output projection.

Everything else (embeddings of the vision side, norms, heads, routers,
position tables) is replicated. Rules are regular expressions over
variable paths; Keras refuses a path that two rules match, so each
family's rules are disjoint. The split dimensions (heads, MLP width,
experts, vocabulary) must be divisible by the size of the model axis.
"""

import keras

# Stands for the model axis in the rules below; `get_layout_map` puts the
# mesh's own axis name in its place.
MODEL = "model"

# Keras `MultiHeadAttention` under big_vision's name, in encoder blocks and
# MAP heads: q/k/v kernels `[D, H, D/H]`, biases `[H, D/H]`, output kernel
# `[H, D/H, D]` (its bias `[D]` is replicated).
ATTENTION_RULES = {
    r".*MultiHeadDotProductAttention_0/(query|key|value)/kernel": (
        None,
        MODEL,
        None,
    ),
    r".*MultiHeadDotProductAttention_0/(query|key|value)/bias": (MODEL, None),
    r".*MultiHeadDotProductAttention_0/attention_output/kernel": (
        MODEL,
        None,
        None,
    ),
}

# `MlpBlock`: `Dense_0` `[D, M]` by columns, `Dense_1` `[M, D]` by rows.
MLP_RULES = {
    r".*MlpBlock_0/Dense_0/kernel": (None, MODEL),
    r".*MlpBlock_0/Dense_0/bias": (MODEL,),
    r".*MlpBlock_0/Dense_1/kernel": (MODEL, None),
}

# `SparseMoeMlp` in an encoder block, whatever its name: kernels
# `[E, D, M]`, `[E, M, D]` and biases `[E, M]`, `[E, D]` by experts. Keras
# has no expert-parallel class; splitting the leading axis is all it takes,
# since the dispatch and combine einsums contract over it.
EXPERT_RULES = {
    r".*encoderblock_\d+/[^/]+/kernel_[01]": (MODEL, None, None),
    r".*encoderblock_\d+/[^/]+/bias_[01]": (MODEL, None),
}

# The vision encoder (and big_vision's text tower, which has the same
# blocks), dense or with sparse MLPs.
TRANSFORMER_RULES = {**ATTENTION_RULES, **MLP_RULES, **EXPERT_RULES}

# PaLI's mT5: bias-free q/k/v `[D, H*d]` by columns, output `[H*d, D]` by
# rows; gated MLP likewise; the token embedding `[V, D]` and the output
# projection `[D, V]` by vocabulary.
_MT5_BLOCK = r"(.*/)?(en|de)coder/block_\d+/"
MT5_RULES = {
    _MT5_BLOCK + r"(self|cross)_attention/(query|key|value)/kernel": (
        None,
        MODEL,
    ),
    _MT5_BLOCK + r"(self|cross)_attention/output/kernel": (MODEL, None),
    _MT5_BLOCK + r"mlp_(gate|linear)/kernel": (None, MODEL),
    _MT5_BLOCK + r"mlp_output/kernel": (MODEL, None),
    r"(.*/)?token_embedding/embeddings": (MODEL, None),
    r"(.*/)?lm_head/kernel": (None, MODEL),
}


def _check_axis(device_mesh, argument: str, name: str | None) -> None:
    if name is not None and name not in device_mesh.axis_names:
        raise ValueError(
            f"`{argument}` must name an axis of `device_mesh` (axes "
            f"{list(device_mesh.axis_names)}). Received: {argument}={name!r}"
        )


class ParallelLayouts:
    """Gives a backbone `get_layout_map` from its class's `layout_rules`.

    `layout_rules` maps regular expressions over variable paths to the
    weight's axes, with `MODEL` where the weight is split over the model
    axis; a backbone composes the rule sets of its parts (see this
    module's constants).
    """

    layout_rules: dict[str, tuple] = {}

    @classmethod
    def get_layout_map(
        cls,
        device_mesh: keras.distribution.DeviceMesh,
        model_parallel_dim_name: str = "model",
        data_parallel_dim_name: str | None = "batch",
    ) -> keras.distribution.LayoutMap:
        """A `LayoutMap` splitting this model's large weights over a mesh.

        Attention is split by heads, MLPs by hidden units, sparse MLPs by
        experts (and, in PaLI, mT5's vocabulary), all over the model axis;
        other weights are replicated, and every weight is replicated over
        the data axis, which `ModelParallel(batch_dim_name=...)` splits
        the batch over. The split dimensions must be divisible by the
        model axis' size. Call it before building the model: weights take
        their layout when they are created.

        Args:
            device_mesh: The `keras.distribution.DeviceMesh`.
            model_parallel_dim_name: The mesh axis the weights are split
                over.
            data_parallel_dim_name: The mesh axis the batch is split over
                (checked to exist; None for a mesh without one).

        Returns:
            A `keras.distribution.LayoutMap` for
            `keras.distribution.ModelParallel`.

        Example:

        ```python
        mesh = keras.distribution.DeviceMesh(
            (4, 2), ["batch", "model"], keras.distribution.list_devices()
        )
        layout_map = keras_vl.models.ClippoBackbone.get_layout_map(mesh)
        keras.distribution.set_distribution(
            keras.distribution.ModelParallel(
                layout_map=layout_map, batch_dim_name="batch"
            )
        )
        model = keras_vl.models.Clippo.from_preset("./clippo_preset")
        ```
        """
        if not isinstance(device_mesh, keras.distribution.DeviceMesh):
            raise TypeError(
                "`device_mesh` must be a keras.distribution.DeviceMesh. "
                f"Received: {type(device_mesh).__name__}"
            )
        _check_axis(
            device_mesh, "model_parallel_dim_name", model_parallel_dim_name
        )
        _check_axis(
            device_mesh, "data_parallel_dim_name", data_parallel_dim_name
        )
        if model_parallel_dim_name == data_parallel_dim_name:
            raise ValueError(
                "`model_parallel_dim_name` and `data_parallel_dim_name` must "
                f"be different axes. Both are {model_parallel_dim_name!r}."
            )
        layout_map = keras.distribution.LayoutMap(device_mesh)
        for pattern, axes in cls.layout_rules.items():
            layout_map[pattern] = tuple(
                model_parallel_dim_name if axis == MODEL else axis
                for axis in axes
            )
        return layout_map
