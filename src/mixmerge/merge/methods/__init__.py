"""Merge methods, one module each (a family shares one), each class under `@register_method`.

`mixmerge.merge.registry` imports every module of this package, so adding a module here is all
it takes to add a method; `python -m mixmerge.merge.registry` prints the table of methods with
their global and per-model parameters and defaults, read from the classes' declarations.

All but r_tsvm follow a reference implementation: MergeKit (defaults from its method
registry), or fusion_bench for tsvm, iso_c, iso_cts and tsv_c; each module's docstring states
the semantics and every deliberate difference from its reference.
"""
