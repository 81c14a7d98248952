"""SigLIP's sigmoid loss over a JAX device mesh without the global batch.

Under `keras.distribution.DataParallel` (or `ModelParallel`) the train step
is one program over global arrays. Written plainly, the sigmoid loss makes
XLA all-gather the `[B, D]` text embeddings on every device and form the
`[B / n, B]` logits of its image rows, forward and backward. The ring here
(SigLIP's "chunked" variant) keeps every device at `[B / n, B / n]`
logits and `[B / n, D]` embeddings:

* Forward: each of the `n` devices on the batch axis scores its image rows
  against the text chunk it holds, then passes that chunk to the next
  device (`ppermute`). After `n` steps every image has met every text; the
  sums of `-log sigmoid(y * L)` are added across devices (`psum`) and
  divided by the global batch size, as the plain loss does.
* Backward: a custom VJP runs the ring again, recomputing each block's
  logits instead of keeping them. The gradient of a text chunk travels
  with the chunk and is back on its owner after the `n`-th pass. Plain
  autodiff through the ring would keep every step's `[B / n, B / n]`
  residuals, which add up to the `[B / n, B]` of the gathered loss.

The in-batch top-1 accuracies come out of the same ring: each image row
keeps its best text so far, and each text chunk carries its best image so
far (score, index, whether it is a positive) from device to device.

This module is JAX-only; `ring_mesh()` says whether the ring applies.
"""

from typing import Any

import keras

__all__ = ["ring_mesh", "sigmoid_ring_loss"]


def ring_mesh() -> tuple[Any, str, int] | None:
    """The mesh and batch axis the ring runs over, if any.

    Returns:
        `(jax_mesh, batch_axis_name, num_devices_on_that_axis)` on the JAX
        backend under a `keras.distribution` whose batch axis spans more
        than one device, else None (other backends, no distribution, or
        one device), where the plain loss is already local.

    Example:

    ```python
    from keras_vl.distribute.ring import ring_mesh

    keras.distribution.set_distribution(keras.distribution.DataParallel())
    ring_mesh()  # (Mesh(...), "batch", 8) on 8 devices
    ```
    """
    if keras.backend.backend() != "jax":
        return None
    distribution = keras.distribution.distribution()
    if distribution is None:
        return None
    axis = getattr(distribution, "batch_dim_name", None)
    mesh = distribution.device_mesh
    if axis not in mesh.axis_names:
        return None
    size = mesh.shape[list(mesh.axis_names).index(axis)]
    if size <= 1:
        return None
    return mesh.backend_mesh, axis, int(size)


def sigmoid_ring_loss(
    image_embeddings: Any,
    text_embeddings: Any,
    logit_scale: Any,
    logit_bias: Any,
    positives: Any | None = None,
    recompute: bool = True,
) -> tuple[Any, Any, Any]:
    """The sigmoid loss and both accuracies of a global batch, by a ring.

    Requires `ring_mesh()` to be set (JAX, a distribution over several
    devices). The inputs are the global batch, as a jitted Keras step sees
    it; they are split over the batch axis.

    Args:
        image_embeddings: float32 `[B, D]`, row `i` pairs with text `i`.
        text_embeddings: float32 `[B, D]`.
        logit_scale: float32 scalar `s`.
        logit_bias: float32 scalar `b`.
        positives: Optional boolean `[B, B]` of the extra positive pairs
            (rows images, columns texts); the diagonal always is one.
        recompute: Whether the gradient runs the ring again (the custom
            VJP). False lets JAX differentiate the forward ring, which
            keeps every step's logits: the same numbers, with about the
            gathered loss's memory (for comparison, see
            `benchmarks/sigmoid_ring.py`).

    Returns:
        `(loss, image_to_text_accuracy, text_to_image_accuracy)`, float32
        scalars equal to the plain loss and to `contrastive_accuracy` of
        the whole `[B, B]` logits (to float rounding).

    Example:

    ```python
    loss, i2t, t2i = sigmoid_ring_loss(z_img, z_txt, scale, bias)
    ```
    """
    import jax
    import jax.numpy as jnp
    from jax.sharding import PartitionSpec

    found = ring_mesh()
    if found is None:
        raise ValueError(
            "The ring sigmoid loss needs the JAX backend and a "
            "`keras.distribution` whose batch axis spans several devices."
        )
    mesh, axis, size = found
    batch = image_embeddings.shape[0]
    if batch % size:
        raise ValueError(
            f"The global batch ({batch} rows of `image_embeddings`) must "
            f"divide by the {size} devices of the mesh's {axis!r} axis."
        )
    rows = PartitionSpec(axis, None)
    scalar = PartitionSpec()
    ring = _Ring(axis, size, batch // size, positives is not None, recompute)
    if positives is None:
        positives = jnp.zeros((batch, 1), "int32")  # Unused stand-in.

    def per_device(img, txt, scale, bias, pos):
        # Varying copies: their gradients are this device's share, which
        # JAX sums over the axis when it transposes the cast.
        scale, bias = (
            jax.lax.pcast(v, axis, to="varying") for v in (scale, bias)
        )
        nll, i2t, t2i = ring.run(img, txt, scale, bias, pos.astype("int32"))
        total = jax.lax.psum(jnp.stack([nll, i2t, t2i]), axis)
        return total / batch

    totals = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(rows, rows, scalar, scalar, rows),
        out_specs=scalar,
    )(image_embeddings, text_embeddings, logit_scale, logit_bias, positives)
    hits = jax.lax.stop_gradient(totals[1:])
    return totals[0], hits[0], hits[1]


class _Ring:
    """The per-device ring: `run(img, txt, scale, bias, positives)` ->
    (this device's sum of `-log sigmoid`, its image-to-text hits, the
    text-to-image hits of the chunk it ends with), with a custom VJP for
    the first (unless `recompute` is False)."""

    def __init__(
        self,
        axis: str,
        size: int,
        rows: int,
        with_positives: bool,
        recompute: bool = True,
    ):
        import jax

        self.axis, self.size, self.rows = axis, size, rows
        self.with_positives = with_positives
        # Device i sends to i + 1, so step s holds device (i - s)'s chunk.
        self.forward_perm = [(i, (i + 1) % size) for i in range(size)]
        self.run = self._loss_and_hits
        if recompute:
            self.run = jax.custom_vjp(self._loss_and_hits)
            self.run.defvjp(self._forward, self._backward)

    def _pass(self, x):
        import jax

        return jax.lax.ppermute(x, self.axis, self.forward_perm)

    def _varying(self, x):
        """`x` typed as differing between devices, as a loop carry that
        becomes device-dependent must start."""
        import jax

        return jax.tree.map(
            lambda v: jax.lax.pcast(v, self.axis, to="varying"), x
        )

    def _block(self, img, chunk, scale, bias, pos, step):
        """Logits of this device's rows against the chunk held at `step`,
        the signs of their labels, and the chunk's first global column."""
        import jax
        import jax.numpy as jnp

        me = jax.lax.axis_index(self.axis)
        owner = (me - step) % self.size
        similarity = img @ chunk.T
        logits = scale * similarity + bias
        own = jnp.logical_and(owner == me, jnp.eye(self.rows, dtype=bool))
        if self.with_positives:
            columns = jax.lax.dynamic_slice_in_dim(
                pos, owner * self.rows, self.rows, axis=1
            )
            own = jnp.logical_or(own, columns != 0)
        signs = jnp.where(own, 1.0, -1.0)
        return similarity, logits, signs, owner * self.rows

    def _loss_and_hits(self, img, txt, scale, bias, pos):
        import jax
        import jax.numpy as jnp

        me = jax.lax.axis_index(self.axis)
        first_row = me * self.rows
        # Per image row and per text of the travelling chunk: best score so
        # far, its global index, and whether that pair is a positive.
        worst = jnp.full((self.rows,), -jnp.inf, "float32")
        none = jnp.full((self.rows,), jnp.iinfo("int32").max, "int32")
        no = jnp.zeros((self.rows,), bool)
        image_best = (worst, none, no)

        def step(s, carry):
            nll, image_best, chunk, text_best = carry
            _, logits, signs, first_col = self._block(
                img, chunk, scale, bias, pos, s
            )
            nll = nll - jnp.sum(jax.nn.log_sigmoid(signs * logits))
            image_best = _better(image_best, logits, signs, first_col, 1)
            text_best = _better(text_best, logits, signs, first_row, 0)
            return nll, image_best, chunk, text_best

        def step_and_pass(s, carry):
            nll, image_best, chunk, text_best = step(s, carry)
            chunk, text_best = self._pass((chunk, text_best))
            return nll, image_best, chunk, text_best

        start = self._varying(
            (jnp.zeros((), "float32"), image_best, (worst, none, no))
        )
        carry = (start[0], start[1], txt, start[2])
        carry = jax.lax.fori_loop(0, self.size - 1, step_and_pass, carry)
        nll, image_best, _, text_best = step(self.size - 1, carry)
        i2t = jnp.sum(image_best[2].astype("float32"))
        t2i = jnp.sum(text_best[2].astype("float32"))
        return nll, i2t, t2i

    def _forward(self, img, txt, scale, bias, pos):
        return self._loss_and_hits(img, txt, scale, bias, pos), (
            img,
            txt,
            scale,
            bias,
            pos,
        )

    def _backward(self, saved, cotangents):
        import jax
        import jax.numpy as jnp

        img, txt, scale, bias, pos = saved
        upstream = cotangents[0]  # The hit counts have no gradient.

        def step(s, carry):
            d_img, d_scale, d_bias, chunk, d_chunk = carry
            similarity, logits, signs, _ = self._block(
                img, chunk, scale, bias, pos, s
            )
            # d/dL of -log sigmoid(y L) is -y sigmoid(-y L).
            d_logits = -upstream * signs * jax.nn.sigmoid(-signs * logits)
            d_img = d_img + scale * (d_logits @ chunk)
            d_chunk = d_chunk + scale * (d_logits.T @ img)
            d_scale = d_scale + jnp.sum(d_logits * similarity)
            d_bias = d_bias + jnp.sum(d_logits)
            return d_img, d_scale, d_bias, chunk, d_chunk

        def step_and_pass(s, carry):
            d_img, d_scale, d_bias, chunk, d_chunk = step(s, carry)
            chunk, d_chunk = self._pass((chunk, d_chunk))
            return d_img, d_scale, d_bias, chunk, d_chunk

        zero = self._varying(jnp.zeros((), "float32"))
        carry = (jnp.zeros_like(img), zero, zero, txt, jnp.zeros_like(txt))
        carry = jax.lax.fori_loop(0, self.size - 1, step_and_pass, carry)
        d_img, d_scale, d_bias, _, d_chunk = step(self.size - 1, carry)
        # One more pass brings each chunk's gradient home.
        d_txt = self._pass(d_chunk)
        return d_img, d_txt, d_scale, d_bias, None


def _better(best, logits, signs, first_index, axis):
    """Running top-1 along `axis` of a block of logits (1: each row's best
    column, 0: each column's best row): `(score, global index, positive)`.
    Ties go to the lower index, as `argmax` over the whole matrix does."""
    import jax.numpy as jnp

    score, index, positive = best
    block_index = jnp.argmax(logits, axis=axis)
    block_score = jnp.max(logits, axis=axis)
    block_positive = jnp.take_along_axis(
        signs > 0, jnp.expand_dims(block_index, axis), axis=axis
    ).squeeze(axis)
    block_index = block_index.astype("int32") + first_index
    wins = (block_score > score) | (
        (block_score == score) & (block_index < index)
    )
    return (
        jnp.where(wins, block_score, score),
        jnp.where(wins, block_index, index),
        jnp.where(wins, block_positive, positive),
    )
