"""Output: the HTML report and its figures, terminal tables."""
