"""EEMU: the method (`method`), its meta-training of a shard (`meta`) and its inference-time
adaptation (`adapt`). Importing the package registers `method=eemu`."""

from .method import EEMU

__all__ = ["EEMU"]
