"""Readers of other projects' SoundNet files, none of which executes code from the file.

- :mod:`.source`: any supported file -> a neutral :class:`~.source.SourceNetwork` (Torch7 ``.t7``
  and the release zip, the TensorFlow port's ``.npy``/``.npz``, PyTorch/safetensors state dicts).
- :mod:`.detect`: what a file is (any of those, or a soundnet-cli checkpoint), torch-free.
- :mod:`.geometry`: checks a source network against SoundNet-8/5.
- :mod:`.torch7`: a small, safe Torch7 serialisation reader.
- :mod:`.safeload`: a restricted ``.npy`` unpickler and ``torch.load(weights_only=True)``.
"""
