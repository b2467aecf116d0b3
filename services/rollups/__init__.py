"""The rollups service: output proposals and the challenger (issue 4, in progress).

Built so far: ``_derivation``, which rebuilds the L2 chain from L1 data alone (batches,
forced transactions, deposits) with the sequencer's own state transition.
"""
