"""keras-weightinit: weight initialization for Keras 3, measured.

Initializers for `kernel_initializer=`, greedy RBM (deep belief net)
pretraining, LSUV and activation-aware initialization of whole models,
TensorBoard gradient histograms and signal-propagation diagnostics.
"""

__version__ = "0.1.0"

from keras_weightinit.callbacks import DBNPretrain, LSUVInit
from keras_weightinit.diagnostics import DiagnosisReport, diagnose
from keras_weightinit.gains import calculate_gain, compute_fans
from keras_weightinit.gradients import GradientHistograms
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
from keras_weightinit.pretraining import pretrain_dbn
from keras_weightinit.rbm import RBM

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
]
