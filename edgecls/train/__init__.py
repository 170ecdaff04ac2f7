"""Training: strategy (the only place a tf.distribute.Strategy is built), trainer, callbacks.

Importing this package does not import TensorFlow; ``edgecls.train.trainer`` does.
"""
