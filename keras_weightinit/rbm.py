"""Placeholder: the RBM (issue 3) is being written."""


class RBM:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("RBM is not written yet")
