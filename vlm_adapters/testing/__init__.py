"""Contract-test kit: subclass :class:`AdapterContract` to prove an adapter keeps its promises."""

from .contract import AdapterContract, assert_inputs_equal, sample_from_batch
from .images import random_sizes, smooth_image, solid_image

__all__ = ["AdapterContract", "assert_inputs_equal", "random_sizes", "sample_from_batch", "smooth_image", "solid_image"]
