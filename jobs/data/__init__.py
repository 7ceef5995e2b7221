"""Data files shipped with specstress, so the demo needs nothing from outside the package."""
