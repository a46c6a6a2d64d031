"""Placeholder: greedy DBN pretraining (issue 3) is being written."""


def pretrain_dbn(model, x, layers=None, **kwargs):
    raise NotImplementedError("pretrain_dbn is not written yet")
