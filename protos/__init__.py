"""The wire contract: the buf module's .proto sources and, beside each, its generated Python.

``protos.l2node.<service>.v1`` is the bottom layer of the tree: it imports only grpc and protobuf,
so the runtime, the services and the node may all use it without a cycle. Regenerate with
``python protos/generate.py``; ``make lint`` checks it is current and ``buf lint`` checks the
sources.
"""
