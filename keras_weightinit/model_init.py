"""Placeholder: initialize and lsuv (issue 6) are being written."""


def initialize(model, scheme="auto", seed=None):
    raise NotImplementedError("initialize is not written yet")


def lsuv(model, x, tol=0.1, max_iters=10, orthogonal=True):
    raise NotImplementedError("lsuv is not written yet")
