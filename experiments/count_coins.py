"""Counting by convolution: the 24 coins of scikit-image's `coins` photograph, no training.

    python launch.py --config experiments/count_coins.py --workdir runs/count_coins

Multi-scale zero-mean disk detectors (mean inside a disk minus mean of the ring around it, so
one threshold serves every radius) give a feature map per radius; peaks of the scale space,
one per neighbourhood (non-maximum suppression by max pooling), are the coins. Precision and
recall are printed against hand-checked centres (jaxconv/coins_centres.json), and
`coins.png` shows the input, the feature map and the detections. Expected: 24 of 24 coins, no
false detection, in a few seconds on a CPU.
"""

from jaxconv.configs import base


def get_config():
    config = base.get_config()
    config.job = "count_coins"
    return config
