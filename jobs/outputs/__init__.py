"""What a run produces for people: `specstress status`, the dataset export and the HTML report."""
