"""The product: what `l2node up` runs (tree.py), its config, the local L1 and its contracts (deploy.py),
endpoints.json and the control plane."""
