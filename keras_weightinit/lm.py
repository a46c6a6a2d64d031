"""A byte-level language model for `keras-weightinit compare --model gpt`.

The corpus (`stdlib_corpus`: the Python standard library's own source files,
which ship with every Python, or a user's text file), the windows a model
trains on (`windows`), and the models: a KerasHub `GPT2Backbone` with a tied
output (`hub_lm`), and this package's small Transformer (`transformer_lm`)
for the variants KerasHub has no switch for: Post-LN blocks
`x = LN(alpha x + f(x))` (DeepNet) and blocks without LayerNorm (T-Fixup).
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import keras
import numpy as np

from keras_weightinit import checks

__all__ = [
    "CONTEXT",
    "VOCABULARY",
    "hub_lm",
    "read_corpus",
    "set_residual_scale",
    "stdlib_corpus",
    "transformer_lm",
    "windows",
]

VOCABULARY = 256  # bytes
CONTEXT = 64
_EVERY_VALIDATION_FILE = 10  # every 10th file (sorted) is held out


def stdlib_corpus(max_bytes: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of the standard library's top-level `.py` files, split.

    The files of `sysconfig.get_paths()["stdlib"]` are read in sorted order;
    every tenth goes to validation, the others to training, until `max_bytes`
    are read. The same Python gives the same bytes on every machine.

    Args:
        max_bytes: At most this many bytes in all.

    Returns:
        `(train, validation)`, two uint8 arrays.

    Example:

    >>> train, validation = stdlib_corpus(200_000)
    >>> train.dtype, 0 < len(validation) < len(train)
    (dtype('uint8'), True)
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    parts: tuple[list, list] = ([], [])
    total = 0
    for i, path in enumerate(sorted(root.glob("*.py"))):
        data = path.read_bytes()[: max_bytes - total]
        parts[i % _EVERY_VALIDATION_FILE == _EVERY_VALIDATION_FILE - 1].append(data)
        total += len(data)
        if total >= max_bytes:
            break
    train, validation = (np.frombuffer(b"".join(p), np.uint8) for p in parts)
    return train, validation


def read_corpus(path, max_bytes: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """A text file's bytes: the first 90% to train on, the last 10% held out.

    Args:
        path: The file.
        max_bytes: At most this many bytes are read.

    Returns:
        `(train, validation)`, two uint8 arrays.

    Raises:
        ValueError: If the file cannot be read or holds fewer than
            `20 * (CONTEXT + 1)` bytes.

    Example:

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".txt") as f:
    ...     _ = f.write(b"abc " * 1000); f.flush()
    ...     train, validation = read_corpus(f.name)
    >>> len(train), len(validation)
    (3600, 400)
    """
    try:
        with open(path, "rb") as file:
            data = np.frombuffer(file.read(max_bytes), np.uint8)
    except OSError as error:
        raise ValueError(f"cannot read {str(path)!r}: {error}") from None
    if len(data) < 20 * (CONTEXT + 1):
        raise ValueError(
            f"dataset {str(path)!r} holds {len(data)} bytes; a language model "
            f"needs at least {20 * (CONTEXT + 1)}"
        )
    cut = int(len(data) * 0.9)
    return data[:cut], data[cut:]


def windows(data: np.ndarray, count: int, seed: int | None = None):
    """`count` windows of `CONTEXT` bytes and the bytes that follow each.

    Args:
        data: A uint8 array.
        count: How many windows.
        seed: Random starts from this seed; None: evenly spaced starts.

    Returns:
        `(x, y)`, int32 arrays of shape `(count, CONTEXT)`, `y` shifted by one.

    Example:

    >>> x, y = windows(np.arange(200, dtype=np.uint8), 2)
    >>> x[0, :3].tolist(), y[0, :3].tolist()
    ([0, 1, 2], [1, 2, 3])
    """
    last = len(data) - CONTEXT - 1
    if seed is None:
        starts = np.linspace(0, last, count).astype(np.int64)
    else:
        starts = np.random.default_rng(seed).integers(0, last + 1, count)
    index = starts[:, None] + np.arange(CONTEXT + 1)
    chunks = data[index].astype(np.int32)
    return chunks[:, :-1], chunks[:, 1:]


def hub_lm(depth: int, width: int, heads: int = 4) -> keras.Model:
    """KerasHub's GPT-2 (Pre-LN) of `depth` blocks, with its tied output.

    Built from its config (no preset, no download): vocabulary 256, context
    64, feed-forward 4 x `width`, no dropout. The model takes token ids and
    returns logits, `token_embedding(h, reverse=True)` as `GPT2CausalLM`.

    Args:
        depth: Transformer blocks.
        width: Model width.
        heads: Attention heads.

    Returns:
        A functional model from `(batch, length)` ints to `(batch, length,
        256)` logits, `length` up to 64.

    Example:

    >>> hub_lm(1, 16).output.shape
    (None, None, 256)
    """
    import keras_hub

    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=depth,
        num_heads=heads,
        hidden_dim=width,
        intermediate_dim=4 * width,
        dropout=0.0,
        max_sequence_length=CONTEXT,
    )
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.layers.Lambda(keras.ops.ones_like, name="padding_mask")(tokens)
    hidden = backbone({"token_ids": tokens, "padding_mask": mask})
    logits = backbone.token_embedding(hidden, reverse=True)
    return keras.Model(tokens, logits, name="gpt2_lm")


def _attention(h, width: int, heads: int, name: str):
    return keras.layers.MultiHeadAttention(
        heads, width // heads, name=f"{name}_attention"
    )(h, h, use_causal_mask=True)


def _feedforward(h, width: int, name: str):
    h = keras.layers.Dense(4 * width, activation="gelu", name=f"{name}_ffn_in")(h)
    return keras.layers.Dense(width, name=f"{name}_ffn_out")(h)


def transformer_lm(
    depth: int, width: int, norm: str, heads: int = 4, alpha: float = 1.0
) -> keras.Model:
    """A small decoder of Keras layers: Post-LN or without normalization.

    Token and learned position tables added, `depth` blocks of causal
    self-attention and a GELU feed-forward, each a residual branch, and a
    Dense output. `norm="post"`: `x = LN(alpha x + f(x))` after every
    branch (the original Transformer; DeepNet's with `alpha > 1`);
    `norm="none"`: `x = x + f(x)`, no normalization anywhere (T-Fixup's).
    Keras's default initializers (Glorot uniform, uniform tables).

    Args:
        depth: Blocks.
        width: Model width.
        norm: `"post"` or `"none"`.
        heads: Attention heads.
        alpha: The skip path's factor in Post-LN blocks (`set_residual_scale`
            changes it before the first call).

    Returns:
        A functional model from `(batch, length)` ints to `(batch, length,
        256)` logits, `length` up to 64.

    Example:

    >>> transformer_lm(2, 16, "post").output.shape
    (None, None, 256)
    """
    checks.one_of("norm", norm, ("post", "none"))
    tokens = keras.Input((None,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(VOCABULARY, width, name="token_embedding")(tokens)
    positions = keras.layers.Lambda(
        lambda t: keras.ops.broadcast_to(
            keras.ops.arange(keras.ops.shape(t)[1]), keras.ops.shape(t)
        ),
        name="positions",
    )(tokens)
    table = keras.layers.Embedding(CONTEXT, width, name="position_embedding")
    h = keras.layers.Add(name="embeddings")([h, table(positions)])
    for i in range(depth):
        for part, branch in (("attn", _attention), ("ffn", _feedforward)):
            name = f"block{i}"
            f = (
                branch(h, width, heads, name)
                if part == "attn"
                else branch(h, width, name)
            )
            if norm == "post":
                skip = keras.layers.Rescaling(alpha, name=f"{name}_{part}_alpha")(h)
                h = keras.layers.Add(name=f"{name}_{part}_add")([skip, f])
                h = keras.layers.LayerNormalization(name=f"{name}_{part}_norm")(h)
            else:
                h = keras.layers.Add(name=f"{name}_{part}_add")([h, f])
    logits = keras.layers.Dense(VOCABULARY, name="logits")(h)
    return keras.Model(tokens, logits, name=f"transformer_{norm}_ln")


def set_residual_scale(model: keras.Model, alpha: float) -> None:
    """Sets the skip factor `alpha` of a Post-LN `transformer_lm`.

    DeepNet's `initialize(model, "deepnet")` returns it as `report.alpha`;
    call this before the model is compiled and run.

    Args:
        model: A `transformer_lm(..., norm="post")`.
        alpha: The factor.

    Example:

    >>> model = transformer_lm(1, 16, "post")
    >>> set_residual_scale(model, 1.5)
    >>> model.get_layer("block0_attn_alpha").scale
    1.5
    """
    for layer in model.layers:
        if isinstance(layer, keras.layers.Rescaling):
            layer.scale = float(alpha)
