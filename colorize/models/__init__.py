"""Model families, one file each; configs pick one with `_target_`."""
