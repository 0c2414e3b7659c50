"""The machine observer: answers every study task (target region, other region, can't decide) from the stimuli.

- `observer.networks`: which network, weights and layer (no torch); `observer.embedding`: their L2-normalized
  features of a picture (default EfficientNet-Lite0, penultimate).
- `observer.decision`: the decision rule (similarity gap with a margin) and the easy / impossible flags.
- `observer.runner`: every main task of a bundle, batched, with progress and resume.
- `observer.cli`: `spade-study observe BUNDLE`.

The results file is a contract (`contracts.observer`): `analysis` and `study` read it without torch.
"""
