"""The product: the `l2node` command (``cli.py``) and the node it runs (``node/``), the top layer.

The gRPC wire code is not here but in ``protos.l2node.<service>.v1``, beneath everything.
"""
