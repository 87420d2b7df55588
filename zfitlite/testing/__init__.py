"""Testing helpers for zfitlite (reference problems, not needed at run time)."""
