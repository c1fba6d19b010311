"""The CPU speed engine: what makes XLA:CPU training fast, behaviour unchanged elsewhere.

- `fast_conv`: convolution formulations (im2col, per-tap products, Winograd, oneDNN) and
  `PlannedConvolution`, the `convolution` a model computes with once planned;
- `planning`: choosing each convolution's formulations by timing them on this machine;
- `onednn`, `dnnl`: oneDNN's convolutions, through jaxlib's custom call and its library;
- `gradients`: the custom gradients of a bias, a tiled max pool and batch norm;
- `platform`: the machine's facts and the XLA and allocator settings chosen for it.

Nothing is imported here: a model imports `gradients` alone, never the oneDNN bindings.
"""
