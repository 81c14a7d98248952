"""PaLI's language model: an mT5 encoder-decoder that takes embeddings.

mT5 (Xue et al., 2021) as PaLI uses it: the encoder reads a sequence of
input *embeddings* (PaLI puts projected image tokens in front of the
embedded prompt), the decoder reads token ids and attends to the encoder
output. mT5's details, kept exactly:

- bucketed relative position bias (32 buckets, max distance 128),
  bidirectional in the encoder and causal in the decoder, computed once
  per stack and shared by all its layers; none in cross-attention;
- RMS layer norm (no mean, no bias) computed in float32, before each
  sub-block and after each stack;
- gated-GELU feed-forward with GELU's tanh approximation;
- no scaling of the attention scores (folded into the initialisation);
- separate encoder and decoder depths, one token embedding shared by both,
  and an untied output projection whose logits are not rescaled.

keras-hub's T5 layers do not take embeddings and compute their norm and
softmax in the compute dtype, so the stacks are written here; the bucket
formula is keras-hub's.
"""

import keras
from keras import ops
from keras_hub.models import Backbone
from keras_hub.src.models.t5.t5_multi_head_attention import (
    T5MultiHeadAttention,
)

from keras_vl.distribute.buffers import write_rows
from keras_vl.layers import RMSNorm
from keras_vl.layers.remat import block_caller
from keras_vl.layers.rms_norm import rms_norm
from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.parallel_layouts import MT5_RULES, ParallelLayouts
from keras_vl.models.rematerializable import (
    Rematerializable,
    check_remat,
)

# Added to the scores of masked positions (in float32).
MASK_VALUE = -1e9


def _normal(stddev: float) -> keras.initializers.Initializer:
    return keras.initializers.RandomNormal(stddev=stddev)


def _projection(units: int, fan_in: int, name: str, dtype) -> keras.Layer:
    """A bias-free Dense with T5's init: normal with std `fan_in ** -0.5`."""
    return keras.layers.Dense(
        units,
        use_bias=False,
        kernel_initializer=_normal(fan_in**-0.5),
        dtype=dtype,
        name=name,
    )


def _dropout(layer: keras.layers.Dropout, x, training):
    """`layer(x)` when training; otherwise `x`, without calling the layer:
    token-by-token decoding would make dozens of no-op layer calls per
    token, each paying Keras's per-call cost on eager backends."""
    return layer(x, training=True) if training and layer.rate > 0 else x


def _eager_light(layer: keras.Layer, x):
    """`layer(x)` for a bias-free float `Dense`, an `Embedding` or an
    `RMSNorm`, without Keras's per-call machinery (name scopes, autocasting,
    masks): one decoded token makes about 70 such calls, whose overhead on
    an eager backend (torch) outweighs the token's matmuls. Quantized
    layers take the usual path."""
    if isinstance(layer, RMSNorm):
        return layer.call(x)
    if layer.quantization_mode is not None:
        return layer(x)
    if isinstance(layer, keras.layers.Embedding):
        return layer.call(x)
    dtype = layer.compute_dtype
    return ops.matmul(ops.cast(x, dtype), ops.cast(layer.kernel, dtype))


def _kernel(*layers):
    """The kernels of float bias-free `Dense` layers, joined along the
    output axis as one tensor in their compute dtype: fetched once per
    decoding instead of per token. None if any layer is quantized (it is
    then called as a layer)."""
    if any(layer.quantization_mode is not None for layer in layers):
        return None
    dtype = layers[0].compute_dtype
    kernels = [ops.cast(layer.kernel, dtype) for layer in layers]
    return kernels[0] if len(kernels) == 1 else ops.concatenate(kernels, -1)


def _project(layer: keras.Layer, kernel, x):
    """`layer(x)`, with `kernel` from `_kernel(layer)` when it has one."""
    return _eager_light(layer, x) if kernel is None else x @ kernel


def _attend(query, key, value, bias, dtype, dropout=None, training=None):
    """Attention of heads-first queries `[B, H, Tq, Dh]` over keys and
    values `[B, H, Tk, Dh]`: unscaled scores plus the float32 `bias`, a
    float32 softmax, then the weighted values `[B, H, Tq, Dh]` in
    `dtype`."""
    scores = query @ ops.swapaxes(key, -1, -2)
    if dtype != "float32":
        scores = ops.cast(scores, "float32")
    if bias is not None:
        scores = scores + bias
    weights = ops.softmax(scores, axis=-1)
    if dropout is not None:
        weights = _dropout(dropout, weights, training)
    if dtype != "float32":
        weights = ops.cast(weights, dtype)
    return weights @ value


def seq2seq_inputs() -> dict:
    """Symbolic inputs of an encoder-decoder: token ids and padding masks
    of any length for both sides, under keras-hub's names."""
    inputs = {}
    for side in ("encoder", "decoder"):
        inputs[f"{side}_token_ids"] = keras.Input(
            shape=(None,), dtype="int32", name=f"{side}_token_ids"
        )
        inputs[f"{side}_padding_mask"] = keras.Input(
            shape=(None,), dtype="bool", name=f"{side}_padding_mask"
        )
    return inputs


def padding_bias(padding_mask):
    """Float32 attention bias `[B, 1, 1, T]` that hides the padded keys of
    `padding_mask` `[B, T]`."""
    keys = ops.cast(padding_mask, "bool")
    return ops.where(keys, 0.0, MASK_VALUE)[:, None, None, :]


@keras.saving.register_keras_serializable(package="keras_vl")
class MT5Attention(keras.layers.Layer):
    """mT5 multi-head attention, self or cross, with a key/value cache.

    Scores are not scaled by `1 / sqrt(head_dim)` (mT5 folds that into the
    query initialisation); the position bias and mask arrive as one float32
    `bias` added to the scores, and the softmax runs in float32.

    Generation reads its keys and values from caches instead (see
    `MT5Block.decode`): `keys_and_values` makes a cross-attention cache,
    `heads_kernel` and `project_heads` project a token's queries, keys and
    values with kernels fetched once per decoding.

    Args:
        hidden_dim: Width of the inputs and outputs.
        num_heads: Number of heads.
        key_value_dim: Width of each head.
        dropout: Dropout rate on the attention weights.
        **kwargs: Standard layer arguments.

    Example:

    ```python
    attention = MT5Attention(hidden_dim=32, num_heads=4, key_value_dim=8)
    y = attention(np.ones((2, 5, 32), "float32"))  # (2, 5, 32)
    ```
    """

    def __init__(
        self,
        hidden_dim: int,
        num_heads: int,
        key_value_dim: int,
        dropout: float = 0.0,
        **kwargs,
    ):
        # The float32 bias must not be cast to the compute dtype; the
        # dense layers cast their own inputs.
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.key_value_dim = key_value_dim
        self.dropout = dropout
        inner = num_heads * key_value_dim
        policy = self.dtype_policy
        # T5's init: queries also fold in the 1 / sqrt(d) it never applies.
        self.query = _projection(
            inner, hidden_dim * key_value_dim, "query", policy
        )
        self.key = _projection(inner, hidden_dim, "key", policy)
        self.value = _projection(inner, hidden_dim, "value", policy)
        self.output_dense = _projection(hidden_dim, inner, "output", policy)
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy
        )

    def build(self, input_shape, key_value_shape=None):
        self.query.build(input_shape)
        self.key.build(key_value_shape or input_shape)
        self.value.build(key_value_shape or input_shape)
        self.output_dense.build(
            (None, None, self.num_heads * self.key_value_dim)
        )

    def _heads(self, x):
        """`[B, T, heads * head_dim]` -> `[B, heads, T, head_dim]`."""
        batch_size = ops.shape(x)[0]
        x = ops.reshape(x, (batch_size, -1, self.num_heads, self.key_value_dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def keys_and_values(self, source):
        """Keys and values of `source` `[B, T, D]`, each `[B, heads, T,
        head_dim]`: a cross-attention cache."""
        return tuple(self.project_heads(source, None, self.key, self.value))

    def heads_kernel(self, *layers):
        """The kernels of `layers` (this layer's projections), fetched for
        `project_heads`: `[len(layers) * heads, D, head_dim]` in the
        compute dtype, or None if any is quantized."""
        kernel = _kernel(*layers)
        if kernel is None:
            return None
        count = len(layers) * self.num_heads
        kernel = ops.reshape(kernel, (-1, count, self.key_value_dim))
        return ops.transpose(kernel, (1, 0, 2))

    def project_heads(self, x, kernel, *layers):
        """The projections of `x` `[B, T, D]` by `layers`, each `[B,
        heads, T, head_dim]`: one batched matmul with
        `heads_kernel(*layers)` (no reshape), or one call per layer when
        `kernel` is None."""
        if kernel is None:
            return [self._heads(_eager_light(layer, x)) for layer in layers]
        y = x[:, None] @ kernel
        heads = self.num_heads
        return [y[:, i * heads : (i + 1) * heads] for i in range(len(layers))]

    def output_kernel(self):
        """The output projection's kernel `[heads, head_dim, D]` in the
        compute dtype, fetched for `merge_and_project`; None if
        quantized."""
        kernel = _kernel(self.output_dense)
        if kernel is None:
            return None
        return ops.reshape(
            kernel, (self.num_heads, self.key_value_dim, self.hidden_dim)
        )

    def merge_and_project(self, x, kernel):
        """The output projection of heads `[B, heads, T, head_dim]`: one
        contraction over heads and head width with `output_kernel()`
        (no transpose or reshape), or merged then projected by the layer
        when `kernel` is None."""
        if kernel is None:
            return _eager_light(self.output_dense, self.merge_heads(x))
        return ops.einsum("bhtk,hkd->btd", x, kernel)

    def merge_heads(self, x):
        """`[B, heads, T, head_dim]` -> `[B, T, heads * head_dim]`."""
        x = ops.transpose(x, (0, 2, 1, 3))
        batch_size = ops.shape(x)[0]
        return ops.reshape(
            x, (batch_size, -1, self.num_heads * self.key_value_dim)
        )

    def call(self, inputs, key_value_states=None, bias=None, training=None):
        source = inputs if key_value_states is None else key_value_states
        key, value = self.keys_and_values(source)
        (query,) = self.project_heads(inputs, None, self.query)
        x = _attend(
            query,
            key,
            value,
            bias,
            self.compute_dtype,
            self.dropout_layer,
            training,
        )
        return _eager_light(self.output_dense, self.merge_heads(x))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "num_heads": self.num_heads,
                "key_value_dim": self.key_value_dim,
                "dropout": self.dropout,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vl")
class MT5Block(keras.layers.Layer):
    """One mT5 layer: self-attention, cross-attention (decoder only) and a
    gated-GELU feed-forward, each pre-normed and residual.

    Args:
        hidden_dim: Model width.
        intermediate_dim: Width of the feed-forward's hidden layer.
        num_heads: Attention heads.
        key_value_dim: Width of each head.
        is_decoder: Whether to add cross-attention over the encoder output.
        dropout: Dropout rate.
        layer_norm_epsilon: Epsilon of the RMS norms.
        **kwargs: Standard layer arguments.

    Example:

    ```python
    block = MT5Block(32, 64, num_heads=4, key_value_dim=8)
    y = block(np.ones((2, 5, 32), "float32"))  # (2, 5, 32)
    ```
    """

    def __init__(
        self,
        hidden_dim: int,
        intermediate_dim: int,
        num_heads: int,
        key_value_dim: int,
        is_decoder: bool = False,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        # The float32 biases pass through untouched (see `MT5Attention`).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.key_value_dim = key_value_dim
        self.is_decoder = is_decoder
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        policy = self.dtype_policy

        def norm(name):
            return RMSNorm(layer_norm_epsilon, dtype=policy, name=name)

        def attention(name):
            return MT5Attention(
                hidden_dim,
                num_heads,
                key_value_dim,
                dropout,
                dtype=policy,
                name=name,
            )

        self.self_attention_norm = norm("self_attention_norm")
        self.self_attention = attention("self_attention")
        if is_decoder:
            self.cross_attention_norm = norm("cross_attention_norm")
            self.cross_attention = attention("cross_attention")
        self.mlp_norm = norm("mlp_norm")
        self.mlp_gate = _projection(
            intermediate_dim, hidden_dim, "mlp_gate", policy
        )
        self.mlp_linear = _projection(
            intermediate_dim, hidden_dim, "mlp_linear", policy
        )
        self.mlp_output = _projection(
            hidden_dim, intermediate_dim, "mlp_output", policy
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=policy)

    def build(self, input_shape, encoder_shape=None):
        width = (None, None, self.hidden_dim)
        for layer in (self.self_attention_norm, self.mlp_norm):
            layer.build(width)
        self.self_attention.build(width)
        if self.is_decoder:
            self.cross_attention_norm.build(width)
            self.cross_attention.build(width, width)
        self.mlp_gate.build(width)
        self.mlp_linear.build(width)
        self.mlp_output.build((None, None, self.intermediate_dim))

    def call(
        self,
        inputs,
        self_attention_bias=None,
        encoder_outputs=None,
        cross_attention_bias=None,
        training=None,
    ):
        x = inputs
        y = self.self_attention(
            _eager_light(self.self_attention_norm, x),
            bias=self_attention_bias,
            training=training,
        )
        x = x + _dropout(self.dropout_layer, y, training)
        if self.is_decoder:
            y = self.cross_attention(
                _eager_light(self.cross_attention_norm, x),
                key_value_states=encoder_outputs,
                bias=cross_attention_bias,
                training=training,
            )
            x = x + _dropout(self.dropout_layer, y, training)
        y = _eager_light(self.mlp_norm, x)
        y = ops.gelu(
            _eager_light(self.mlp_gate, y), approximate=True
        ) * _eager_light(self.mlp_linear, y)
        y = _dropout(self.dropout_layer, y, training)
        y = _eager_light(self.mlp_output, y)
        return x + _dropout(self.dropout_layer, y, training)

    def decoding_weights(self, fused: bool = True) -> dict:
        """What `decode` reads, fetched once per decoding (decoder only):
        the norm scales in float32 and, when `fused`, the projection
        kernels in the compute dtype, the self-attention query, key and
        value kernels joined into one, and so the feed-forward's gate and
        linear ones. Projections without a kernel here (not `fused`, or
        quantized) are left to their layers (None)."""
        norms = (
            self.self_attention_norm,
            self.cross_attention_norm,
            self.mlp_norm,
        )
        weights = {
            "norms": [ops.cast(norm.scale, "float32") for norm in norms],
        }
        names = (
            "self_qkv",
            "self_output",
            "cross_query",
            "cross_output",
            "mlp_input",
            "mlp_output",
        )
        if not fused:
            return {**weights, **dict.fromkeys(names)}
        self_attention = self.self_attention
        cross_attention = self.cross_attention
        kernels = (
            self_attention.heads_kernel(
                self_attention.query, self_attention.key, self_attention.value
            ),
            self_attention.output_kernel(),
            cross_attention.heads_kernel(cross_attention.query),
            cross_attention.output_kernel(),
            _kernel(self.mlp_gate, self.mlp_linear),
            _kernel(self.mlp_output),
        )
        return {**weights, **dict(zip(names, kernels, strict=True))}

    def decode(self, inputs, weights, cache, cache_index, bias, cross_bias):
        """The layer on decoder tokens at `cache_index` onwards, against
        its caches: `call` in generation, with no dropout.

        Args:
            inputs: `[B, T, D]`.
            weights: `decoding_weights()`.
            cache: `(self keys, self values, cross keys, cross values)`,
                heads first; on torch the self-attention ones are written
                in place.
            cache_index: Position of the first token.
            bias: Float32 self-attention bias `[1, heads, T, max_length]`.
            cross_bias: Float32 bias on the encoder positions, or None.

        Returns:
            `(outputs, cache)`.
        """
        dtype = self.compute_dtype
        epsilon = self.layer_norm_epsilon
        norms = weights["norms"]
        attention = self.self_attention
        y = rms_norm(inputs, norms[0], epsilon, dtype)
        query, key, value = attention.project_heads(
            y,
            weights["self_qkv"],
            attention.query,
            attention.key,
            attention.value,
        )
        key = write_rows(cache[0], key, cache_index, axis=2)
        value = write_rows(cache[1], value, cache_index, axis=2)
        y = _attend(query, key, value, bias, dtype)
        x = inputs + attention.merge_and_project(y, weights["self_output"])

        attention = self.cross_attention
        y = rms_norm(x, norms[1], epsilon, dtype)
        (query,) = attention.project_heads(
            y, weights["cross_query"], attention.query
        )
        y = _attend(query, cache[2], cache[3], cross_bias, dtype)
        x = x + attention.merge_and_project(y, weights["cross_output"])

        y = rms_norm(x, norms[2], epsilon, dtype)
        if weights["mlp_input"] is None:
            gate = _eager_light(self.mlp_gate, y)
            linear = _eager_light(self.mlp_linear, y)
        else:
            y = y @ weights["mlp_input"]
            gate = y[..., : self.intermediate_dim]
            linear = y[..., self.intermediate_dim :]
        y = ops.gelu(gate, approximate=True) * linear
        x = x + _project(self.mlp_output, weights["mlp_output"], y)
        return x, (key, value, cache[2], cache[3])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "key_value_dim": self.key_value_dim,
                "is_decoder": self.is_decoder,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vl")
class MT5Stack(keras.layers.Layer):
    """A stack of `MT5Block`s with its relative position bias and final norm.

    The encoder stack takes embeddings `[B, T, D]` and a padding mask; the
    decoder stack also takes the encoder output and its padding mask, and
    masks causally. The first layer's relative position bias table belongs
    to the stack: the bias is computed once and shared by every layer.

    For generation (decoder only), `start_cache` makes the per-layer
    key/value caches, `causal_bias_table` the position bias of every
    query-key offset once per decoding, and `decode` runs the tokens at a
    cache index against them.

    Args:
        num_layers: Depth.
        hidden_dim: Model width.
        intermediate_dim: Feed-forward hidden width.
        num_heads: Attention heads.
        key_value_dim: Width of each head.
        is_decoder: Decoder (causal, with cross-attention) or encoder.
        dropout: Dropout rate.
        layer_norm_epsilon: Epsilon of the RMS norms.
        num_buckets: Relative position buckets.
        max_distance: Distance from which all positions share a bucket.
        remat: Rematerialise each block in training (calls with caches
            never are): its activations are recomputed in the backward
            pass instead of stored. Outputs and gradients do not change.
        **kwargs: Standard layer arguments.

    Example:

    ```python
    encoder = MT5Stack(2, 32, 64, num_heads=4, key_value_dim=8)
    y = encoder(np.ones((2, 5, 32), "float32"))  # (2, 5, 32)
    ```
    """

    def __init__(
        self,
        num_layers: int,
        hidden_dim: int,
        intermediate_dim: int,
        num_heads: int,
        key_value_dim: int,
        is_decoder: bool = False,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        num_buckets: int = 32,
        max_distance: int = 128,
        remat: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_remat(remat)
        self.remat = remat
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.key_value_dim = key_value_dim
        self.is_decoder = is_decoder
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.blocks = [
            MT5Block(
                hidden_dim,
                intermediate_dim,
                num_heads,
                key_value_dim,
                is_decoder=is_decoder,
                dropout=dropout,
                layer_norm_epsilon=layer_norm_epsilon,
                dtype=self.dtype_policy,
                name=f"block_{i}",
            )
            for i in range(num_layers)
        ]
        self.final_norm = RMSNorm(
            layer_norm_epsilon, dtype=self.dtype_policy, name="final_norm"
        )
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy
        )

    def build(self, input_shape, *args, **kwargs):
        self.relative_attention_bias = self.add_weight(
            name="relative_attention_bias",
            shape=(self.num_buckets, self.num_heads),
            initializer=_normal(self.hidden_dim**-0.5),
            # The bias is added to float32 scores: never read as bfloat16.
            autocast=False,
        )
        for block in self.blocks:
            block.build((None, None, self.hidden_dim))
        self.final_norm.build((None, None, self.hidden_dim))

    def _bias_of(self, relative):
        """The learned bias `[..., heads]` (float32) of relative positions
        (key minus query)."""
        buckets = T5MultiHeadAttention._relative_position_bucket(
            ops.cast(relative, "int32"),
            bidirectional=not self.is_decoder,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        return ops.take(
            ops.cast(self.relative_attention_bias, "float32"), buckets, axis=0
        )

    def position_bias(self, query_length, key_length):
        """Relative position bias `[1, heads, query, key]` in float32."""
        relative = (
            ops.arange(key_length)[None, :] - ops.arange(query_length)[:, None]
        )
        return ops.expand_dims(
            ops.transpose(self._bias_of(relative), (2, 0, 1)), 0
        )

    def call(
        self,
        inputs,
        padding_mask=None,
        encoder_outputs=None,
        encoder_padding_mask=None,
        training=None,
    ):
        length = ops.shape(inputs)[1]
        bias = self.position_bias(length, length)
        visible = None
        if self.is_decoder:
            positions = ops.arange(length)
            visible = (positions[None, :] <= positions[:, None])[None]
        if padding_mask is not None:
            keys = ops.cast(padding_mask, "bool")[:, None, :]
            visible = keys if visible is None else visible & keys
        if visible is not None:
            bias = bias + ops.where(visible, 0.0, MASK_VALUE)[:, None]
        cross_bias = None
        if encoder_padding_mask is not None:
            cross_bias = padding_bias(encoder_padding_mask)
        return self._blocks(
            inputs, bias, encoder_outputs, cross_bias, training=training
        )

    def _blocks(self, x, bias, encoder_outputs, cross_bias, training=None):
        x = _dropout(self.dropout_layer, x, training)
        call, training = block_caller(self.remat, training)
        for block in self.blocks:
            x = call(
                block,
                x,
                self_attention_bias=bias,
                encoder_outputs=encoder_outputs,
                cross_attention_bias=cross_bias,
                training=training,
            )
        x = self.final_norm(x)
        return _dropout(self.dropout_layer, x, training)

    def _check_decoder(self, method):
        if not self.is_decoder:
            raise ValueError(
                f"`{method}` is for a decoder stack; this one is an encoder "
                "(`is_decoder=False`)."
            )

    def start_cache(self, encoder_outputs, max_length):
        """The caches to decode up to `max_length` tokens.

        Args:
            encoder_outputs: The encoder's output `[B, S, D]`.
            max_length: Decoder positions to hold.

        Returns:
            Per layer, `(self keys, self values, cross keys, cross values)`:
            zeros `[B, heads, max_length, head_dim]` for self-attention and
            the keys and values of `encoder_outputs` `[B, heads, S,
            head_dim]`, computed once.
        """
        self._check_decoder("start_cache")
        shape = (
            ops.shape(encoder_outputs)[0],
            self.num_heads,
            max_length,
            self.key_value_dim,
        )
        return [
            # One buffer each: torch writes them in place.
            (
                ops.zeros(shape, self.compute_dtype),
                ops.zeros(shape, self.compute_dtype),
                *block.cross_attention.keys_and_values(encoder_outputs),
            )
            for block in self.blocks
        ]

    def causal_bias_table(self, max_length):
        """The self-attention bias of every query-key offset, causal mask
        included, computed once per decoding: float32 `[heads, 2 *
        max_length - 1]`, entry `max_length - 1 + key - query`."""
        self._check_decoder("causal_bias_table")
        relative = ops.arange(1 - max_length, max_length)
        bias = ops.where(
            relative[:, None] > 0, MASK_VALUE, self._bias_of(relative)
        )
        return ops.transpose(bias)

    def decoding_weights(self, fused: bool = True) -> dict:
        """The weights `decode` reads, fetched once per decoding.

        Args:
            fused: Fetch the projection kernels, joined where they share
                an input (see `MT5Block.decoding_weights`): fewer, larger
                calls, for eager backends where each call costs. A
                compiler does better with the layers' own projections
                (per-token matmuls it plans itself, no joined copies made
                per call): pass False when tracing.

        Returns:
            A dict for `decode`.
        """
        self._check_decoder("decoding_weights")
        return {
            "blocks": [block.decoding_weights(fused) for block in self.blocks],
            "final_norm": ops.cast(self.final_norm.scale, "float32"),
        }

    def decode(
        self,
        inputs,
        cache,
        cache_index,
        bias_table,
        cross_attention_bias=None,
        weights=None,
    ):
        """Decodes embedded tokens against the caches.

        Args:
            inputs: Embedded decoder tokens `[B, T, D]`, those at positions
                `cache_index` onwards.
            cache: From `start_cache` (or a previous `decode`). On torch
                it is updated in place.
            cache_index: Position of the first token (int or scalar
                tensor).
            bias_table: `causal_bias_table(max_length)`.
            cross_attention_bias: Float32 bias `[B, 1, 1, S]` on the
                encoder positions (see `padding_bias`), or None.
            weights: `decoding_weights()`, fetched once for many calls;
                by default fetched here.

        Returns:
            `(hidden_states [B, T, D], cache)`, the cache holding the new
            tokens' keys and values.
        """
        self._check_decoder("decode")
        weights = weights or self.decoding_weights()
        max_length = ops.shape(cache[0][0])[2]
        queries = ops.arange(ops.shape(inputs)[1])[:, None] + cache_index
        offsets = ops.arange(max_length)[None, :] - queries + max_length - 1
        bias = ops.take(bias_table, offsets, axis=1)[None]
        x, caches = inputs, []
        for block, block_weights, layer_cache in zip(
            self.blocks, weights["blocks"], cache, strict=True
        ):
            x, layer_cache = block.decode(
                x,
                block_weights,
                layer_cache,
                cache_index,
                bias,
                cross_attention_bias,
            )
            caches.append(layer_cache)
        x = rms_norm(
            x,
            weights["final_norm"],
            self.layer_norm_epsilon,
            self.compute_dtype,
        )
        return x, caches

    def compute_output_spec(self, inputs, *args, **kwargs):
        return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_layers": self.num_layers,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "key_value_dim": self.key_value_dim,
                "is_decoder": self.is_decoder,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "remat": self.remat,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_vl")
class PaLILanguageModel(
    Rematerializable, FinitePresets, ParallelLayouts, Backbone
):
    """mT5's encoder-decoder, the language half of PaLI.

    As a model it maps token ids to the encoder's and decoder's last hidden
    states (keras-hub's `T5Backbone` inputs and outputs); PaLI instead calls
    its parts: `token_embedding`, `encoder` (which takes any embeddings,
    such as image tokens followed by the embedded prompt), `decoder` (with
    key/value caches for generation) and `lm_head`, the untied output
    projection to vocabulary logits.

    Args:
        vocabulary_size: Size of the token embedding and of the logits.
        hidden_dim: Model width (`d_model`).
        intermediate_dim: Feed-forward hidden width (`d_ff`).
        num_heads: Attention heads.
        key_value_dim: Width of each head (`d_kv`); defaults to
            `hidden_dim // num_heads`.
        num_encoder_layers: Encoder depth.
        num_decoder_layers: Decoder depth; defaults to the encoder's.
        dropout: Dropout rate (mT5: 0.1 in pre-training).
        layer_norm_epsilon: Epsilon of the RMS norms.
        relative_attention_num_buckets: Relative position buckets.
        relative_attention_max_distance: Distance from which all relative
            positions share a bucket.
        remat: bool. Rematerialise the blocks of both stacks in training:
            activations are recomputed in the backward pass instead of
            stored. Also a settable attribute.
        dtype: Dtype or dtype policy of the layers.
        **kwargs: Standard `Backbone` arguments.

    Example:

    ```python
    language = PaLILanguageModel(
        vocabulary_size=250_112, hidden_dim=512, intermediate_dim=1024,
        num_heads=6, key_value_dim=64, num_encoder_layers=8,
    )  # mT5-small
    outputs = language({
        "encoder_token_ids": np.ones((1, 8), "int32"),
        "encoder_padding_mask": np.ones((1, 8), bool),
        "decoder_token_ids": np.zeros((1, 4), "int32"),
        "decoder_padding_mask": np.ones((1, 4), bool),
    })
    logits = language.lm_head(outputs["decoder_sequence_output"])
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): heads,
    # MLP units and the vocabulary split over the model axis.
    layout_rules = MT5_RULES

    def __init__(
        self,
        vocabulary_size: int,
        hidden_dim: int,
        intermediate_dim: int,
        num_heads: int,
        key_value_dim: int | None = None,
        num_encoder_layers: int = 8,
        num_decoder_layers: int | None = None,
        dropout: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        relative_attention_num_buckets: int = 32,
        relative_attention_max_distance: int = 128,
        remat: bool = False,
        dtype=None,
        **kwargs,
    ):
        for name, value in (
            ("vocabulary_size", vocabulary_size),
            ("hidden_dim", hidden_dim),
            ("intermediate_dim", intermediate_dim),
            ("num_heads", num_heads),
            ("num_encoder_layers", num_encoder_layers),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(
                    f"`{name}` must be a positive int. Received: "
                    f"{name}={value!r}"
                )
        if key_value_dim is None:
            if hidden_dim % num_heads:
                raise ValueError(
                    f"`num_heads` ({num_heads}) must divide `hidden_dim` "
                    f"({hidden_dim}) unless `key_value_dim` is given."
                )
            key_value_dim = hidden_dim // num_heads
        if num_decoder_layers is None:
            num_decoder_layers = num_encoder_layers
        stack = dict(
            hidden_dim=hidden_dim,
            intermediate_dim=intermediate_dim,
            num_heads=num_heads,
            key_value_dim=key_value_dim,
            dropout=dropout,
            layer_norm_epsilon=layer_norm_epsilon,
            num_buckets=relative_attention_num_buckets,
            max_distance=relative_attention_max_distance,
            remat=remat,
            dtype=dtype,
        )

        # === Layers ===
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=_normal(1.0),
            dtype=dtype,
            name="token_embedding",
        )
        self.encoder = MT5Stack(
            num_encoder_layers, is_decoder=False, name="encoder", **stack
        )
        self.decoder = MT5Stack(
            num_decoder_layers, is_decoder=True, name="decoder", **stack
        )
        self.lm_head = _projection(
            vocabulary_size, hidden_dim, "lm_head", dtype
        )

        # === Functional Model ===
        inputs = seq2seq_inputs()
        encoder_padding_mask = inputs["encoder_padding_mask"]
        encoded = self.encoder(
            self.token_embedding(inputs["encoder_token_ids"]),
            padding_mask=encoder_padding_mask,
        )
        decoded = self.decoder(
            self.token_embedding(inputs["decoder_token_ids"]),
            padding_mask=inputs["decoder_padding_mask"],
            encoder_outputs=encoded,
            encoder_padding_mask=encoder_padding_mask,
        )
        # The head is applied by the task; build it so that presets hold it.
        self.lm_head.build((None, None, hidden_dim))
        super().__init__(
            inputs=inputs,
            outputs={
                "encoder_sequence_output": encoded,
                "decoder_sequence_output": decoded,
            },
            dtype=dtype,
            **kwargs,
        )
        # keras-hub's Backbone tracks only its functional graph on torch,
        # and the head is not in it: without this its weights would be
        # missing from `weights` and presets there.
        self._tracker.track(self.lm_head)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.hidden_dim = hidden_dim
        self.intermediate_dim = intermediate_dim
        self.num_heads = num_heads
        self.key_value_dim = key_value_dim
        self.num_encoder_layers = num_encoder_layers
        self.num_decoder_layers = num_decoder_layers
        self.dropout = dropout
        self.layer_norm_epsilon = layer_norm_epsilon
        self.relative_attention_num_buckets = relative_attention_num_buckets
        self.relative_attention_max_distance = relative_attention_max_distance

    @property
    def remat_stacks(self) -> list:
        return [self.encoder, self.decoder]

    def embed(self, token_ids):
        """Token embeddings of `token_ids` (the table both stacks share)."""
        return _eager_light(self.token_embedding, token_ids)

    def logits(self, hidden_states):
        """Vocabulary logits of decoder states (the untied `lm_head`)."""
        return _eager_light(self.lm_head, hidden_states)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hidden_dim": self.hidden_dim,
                "intermediate_dim": self.intermediate_dim,
                "num_heads": self.num_heads,
                "key_value_dim": self.key_value_dim,
                "num_encoder_layers": self.num_encoder_layers,
                "num_decoder_layers": self.num_decoder_layers,
                "dropout": self.dropout,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "relative_attention_num_buckets": (
                    self.relative_attention_num_buckets
                ),
                "relative_attention_max_distance": (
                    self.relative_attention_max_distance
                ),
                "remat": self.remat,
            }
        )
        return config
