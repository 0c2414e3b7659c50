"""The contracts between the platform's parts, each in exactly one module, all torch-free.

- `contracts.manifest`: the study bundle's `manifest.json` (written by `generation`, served by `study`).
- `contracts.responses`: the responses CSV / `responses_export` view (written by `study`, read by `analysis`).
- `contracts.files`: the one atomic-write helper every part uses for its outputs.

`generation`, `study` and `analysis` import these; none of them owns them.
"""
