"""keras-weightinit: weight initialization for Keras 3, measured.

Initializers for `kernel_initializer=`, greedy RBM (deep belief net)
pretraining, LSUV and activation-aware initialization of whole models,
TensorBoard gradient histograms and signal-propagation diagnostics.

`import keras_weightinit` imports Keras and the modules that register the
classes Keras deserializes by name (`"keras_weightinit>HeNormal"`, saved
`.keras` models), as KerasHub does. The command line lives beside the
package (`keras_weightinit_cli`), so that it answers `--help` and a bad
argument before Keras starts.

TensorFlow is imported only where it is needed: on JAX and PyTorch,
`initialize`, `lsuv`, `diagnose`, the callbacks and the initializers run
without it, and the package imports where it is not installed. The RBM
(`RBM`, `pretrain_dbn`, `DBNPretrain`'s training) still trains in
TensorFlow: there those names are imported on first use.
"""

from __future__ import annotations

import importlib

import keras

from keras_weightinit.callbacks import DBNPretrain, GradientHistograms, LSUVInit
from keras_weightinit.diagnostics import DiagnosisReport, diagnose
from keras_weightinit.gains import calculate_gain, compute_fans
from keras_weightinit.initializers import (
    DeltaOrthogonal,
    HeNormal,
    HeUniform,
    Orthogonal,
    RandomNormal,
    SmallRandomNormal,
    XavierNormal,
    XavierUniform,
    ZerO,
    get_scheme,
    scheme_names,
)
from keras_weightinit.model_init import LSUVReport, initialize, lsuv
from keras_weightinit.mup import (
    MuAdam,
    MuAdamW,
    MuMultiHeadAttention,
    MuReadout,
    MuSGD,
    mup_multipliers,
    set_base_shapes,
)
from keras_weightinit.transfer import CoordCheck, coord_check, lr_transfer

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "DBNPretrain",
    "DeltaOrthogonal",
    "DiagnosisReport",
    "GradientHistograms",
    "HeNormal",
    "HeUniform",
    "LSUVInit",
    "LSUVReport",
    "Orthogonal",
    "RBM",
    "RandomNormal",
    "SmallRandomNormal",
    "XavierNormal",
    "XavierUniform",
    "ZerO",
    "calculate_gain",
    "compute_fans",
    "diagnose",
    "get_scheme",
    "initialize",
    "lsuv",
    "pretrain_dbn",
    "scheme_names",
    "CoordCheck",
    "MuAdam",
    "MuAdamW",
    "MuMultiHeadAttention",
    "MuReadout",
    "MuSGD",
    "coord_check",
    "lr_transfer",
    "mup_multipliers",
    "set_base_shapes",
]

# The RBM still trains in TensorFlow (`rbm`, and `pretraining` above it): on
# TensorFlow, which Keras has imported already, they are imported below like
# the rest; on JAX and PyTorch on first use, so that `import keras_weightinit`
# neither starts TensorFlow there nor needs it installed.
_TENSORFLOW_MODULES = {"pretrain_dbn": "pretraining", "RBM": "rbm"}

if keras.backend.backend() == "tensorflow":
    from keras_weightinit.pretraining import pretrain_dbn
    from keras_weightinit.rbm import RBM


def __getattr__(name: str):
    """Imports `RBM` or `pretrain_dbn`, which need TensorFlow, on first use."""
    if name not in _TENSORFLOW_MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_TENSORFLOW_MODULES[name]}")
    value = globals()[name] = getattr(module, name)
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
