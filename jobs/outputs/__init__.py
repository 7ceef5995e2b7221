"""What a run produces for people: `specstress status` and the HTML report (the dataset export is in `jobs/release`)."""
