"""The node's services, each a worker process built by :mod:`services.runtime`."""
