"""Model specs as sections: which part of a spec a verdict rests on, and what changed between versions.

- `sections`: a markdown spec split into sections with stable ids, the outline judges cite from.
- `diff`: two versions of a spec compared section by section.
- `flips`: paired verdicts under two versions, McNemar's test, and the sections cited.

Pure library code, Ray-free; it imports nothing from `jobs` so the stages and the analysis can use it.
"""
