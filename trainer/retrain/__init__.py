"""Retraining from the archive: pull readers' corrected SEGs, fine-tune, compare, promote."""
