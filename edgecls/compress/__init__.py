"""Compression stages through tensorflow-model-optimization: prune, cluster, quantize (QAT), and the runner.

Importing this package does not import TensorFlow; the technique modules do.
"""
