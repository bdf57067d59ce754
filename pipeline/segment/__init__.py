"""UNet++ segmentation experiments of the paper (grids A and B, protocols paper and clean).

Modules: config (params), model (smp UNet++), data (pairs, augmentations), experiments
(names -> splits), train (loop, selection), run (one experiment x fold -> metrics files).
"""
