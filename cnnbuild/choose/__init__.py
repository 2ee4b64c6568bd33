"""Choosing a network (seed 001's closing chart: accuracy against compute): every candidate
is checked statically first — parameters, multiply-adds, activation memory, receptive field,
in milliseconds and without TensorFlow — so only the ones worth it are trained.

    candidates.py   a candidate spec's static figures and the budget it must fit
    compare.py      `cnnbuild compare`: a row per spec or variant; with --epochs, trained and charted
    tune.py         `cnnbuild tune`: the spec's `search:` space run by keras-tuner's oracles,
                    over-budget and invalid candidates recorded and never trained
    scale.py        `cnnbuild scale`: EfficientNet's compound scaling to a budget

This stage sits above the families table: it loads, checks and trains specs through it.
"""
