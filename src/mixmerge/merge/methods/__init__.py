"""Merge methods, one module each (a family shares one); registered in `mixmerge.merge.registry`.

| merge_method | module | global parameters (default) | per-model parameters (default) |
| --- | --- | --- | --- |
| linear | linear | normalize (true) | weight |
| task_arithmetic | task_arithmetic | normalize (false), rescale (false), lambda (1), int8_mask | weight, density (1, unused) |
| ties | ties | normalize (true), rescale (false), lambda, int8_mask | weight, density (1) |
| dare_linear | dare | normalize (false), rescale (true), rescale_mode (l1), lambda, int8_mask | weight, density (1) |
| dare_ties | dare | as dare_linear | weight, density (1) |
| della_linear | della | normalize (false), rescale (true), rescale_mode (l1), lambda, int8_mask | weight, density (1), epsilon (0.15) |
| della | della | normalize (true), rescale (true), rescale_mode (l1), lambda, int8_mask | weight, density (1), epsilon (0.15) |
| breadcrumbs | breadcrumbs | normalize (false), rescale (false), lambda, int8_mask | weight, density (1), gamma (0.01) |
| breadcrumbs_ties | breadcrumbs | as breadcrumbs | weight, density (1), gamma (0.01) |
| model_stock | model_stock | filter_wise (false) | none |
| tsvm | tsvm | alpha (1), svd (exact), niter (2), oversample (10), exclude ([]) | none |
| r_tsvm | r_tsvm | scale (1), weighting (outlier), rank_selection (true), gamma (1), epsilon (0.1), epsilon_mode (relative), k_sigma (3), svd, niter, oversample, exclude | none |

The first eleven follow MergeKit (defaults from its method registry); each module's
docstring states the semantics and every deliberate difference from MergeKit.
"""
