"""The net-mesh target: net-mesh's C ABI driven from Numba kernels, judged by Redis streams.

Importing this package loads nothing native; ``NetMeshTarget.prepare`` does.
"""
from .abi import NetMeshConfigError, NetMeshError
from .target import NetMeshConfig, NetMeshTarget

__all__ = ["NetMeshConfig", "NetMeshConfigError", "NetMeshError", "NetMeshTarget"]
