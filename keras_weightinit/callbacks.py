"""Keras callbacks that initialize a model from data before `fit` trains it.

Each callback runs its initializer once, in `on_train_begin` of the first
`fit` it is passed to; later `fit` calls train on as usual.
"""

from __future__ import annotations

import keras

from keras_weightinit.data import Stream, is_stream
from keras_weightinit.model_init import check_lsuv_args, lsuv
from keras_weightinit.pretraining import check_pretrain_args, pretrain_dbn

__all__ = ["DBNPretrain", "LSUVInit"]


class _OnFirstFit(keras.callbacks.Callback):
    """Runs `self._run(model)` once, at the beginning of the first `fit`."""

    def __init__(self):
        super().__init__()
        self.result = None
        self.done = False

    def _run(self, model: keras.Model):
        raise NotImplementedError

    def on_train_begin(self, logs=None):
        if not self.done:
            self.result = self._run(self.model)
            self.done = True


class DBNPretrain(_OnFirstFit):
    """Greedy layer-wise RBM pretraining of a model's Dense layers.

    See `keras_weightinit.pretrain_dbn` for what it does; this callback runs
    it in `on_train_begin` of the first `fit` and keeps the per-layer
    histories in `self.result`.

    Args:
        x: The pretraining inputs: an array (pretrained in memory), or a
            batched finite `tf.data.Dataset` of `x` or `(x, y)` or a
            `keras.utils.PyDataset`, streamed batch by batch in memory of the
            order of a batch (see `pretrain_dbn`).
        layers: Names of the Dense layers to pretrain; default every Dense
            layer but the last.
        log_dir: If given, TensorBoard scalars per layer (`pretrain/<layer>`).
        verbose: 1 shows a progress bar per layer, 0 is silent.
        **rbm_args: `visible` (`"auto"`, `"bernoulli"`, `"gaussian"`) and the
            `RBM` arguments (`epochs`, `batch_size`, `learning_rate`,
            `shuffle_buffer` for streamed data, ...), checked here so that a
            bad value fails before `fit`.

    Raises:
        ValueError: At construction, for a bad `layers`, `visible` or RBM
            argument, or a dataset that cannot be streamed (infinite,
            unbatched, a `PyDataset` without a length); in `fit`, for what
            `pretrain_dbn` rejects (the model keeps its weights).

    Example:

    >>> model.fit(x, y, epochs=10, callbacks=[DBNPretrain(x, epochs=5)])
    >>> unlabeled = tf.data.Dataset.from_tensor_slices(x_unlabeled).batch(256)
    >>> model.fit(ds, epochs=10, callbacks=[DBNPretrain(unlabeled, epochs=5)])

    Reference:
        Hinton, Osindero & Teh, "A fast learning algorithm for deep belief
        nets", Neural Computation 2006.
    """

    def __init__(
        self,
        x,
        layers: list[str] | None = None,
        log_dir: str | None = None,
        verbose: int = 1,
        **rbm_args,
    ):
        check_pretrain_args(layers, **rbm_args)
        if is_stream(x):
            Stream(x, "x")  # refuses infinite or unbatched datasets now
        super().__init__()
        self.x = x
        self.layers = layers
        self.log_dir = log_dir
        self.verbose = verbose
        self.rbm_args = rbm_args

    def _run(self, model):
        return pretrain_dbn(
            model,
            self.x,
            layers=self.layers,
            log_dir=self.log_dir,
            verbose=self.verbose,
            **self.rbm_args,
        )


class LSUVInit(_OnFirstFit):
    """Layer-sequential unit-variance initialization before the first `fit`.

    See `keras_weightinit.lsuv`; the per-layer report (an `LSUVReport`, a
    dict `layer name -> {"var_before", "var_after", "iterations",
    "converged"}`) is kept in `self.result`. An unbuilt Sequential model is
    built for `x`'s shape first. The arguments are checked when the callback
    is created; the data when `fit` starts.

    Args:
        x: A batch of inputs (array), as `lsuv` takes it.
        **lsuv_args: Passed to `lsuv` (`tol`, `max_iters`, `orthogonal`,
            `verbose`, `seed`).

    Example:

    >>> model.fit(x, y, epochs=10, callbacks=[LSUVInit(x[:256])])

    Reference:
        Mishkin & Matas, "All you need is a good init", ICLR 2016.
    """

    def __init__(self, x, **lsuv_args):
        super().__init__()
        check_lsuv_args(**lsuv_args)  # fail here rather than inside `fit`
        self.x = x
        self.lsuv_args = lsuv_args

    def _run(self, model):
        return lsuv(model, self.x, **self.lsuv_args)
