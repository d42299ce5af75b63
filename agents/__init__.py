"""Reference learners (flax.linen networks, PureJaxRL-style ``make_train``): MAPPO, CommNet, IQL.

Run from the repository root, not installed: see the README's "Layout" section for why.
"""
