"""A small original four-level value taxonomy in the Values in the Wild CSV format."""
