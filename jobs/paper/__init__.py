"""The paper (arXiv 2510.07686): the model keys of its sweep (`models.py`) and the figures it
publishes (`figures.py`)."""
