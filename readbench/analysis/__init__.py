"""Analysis: statistics of a run (stats, paired), compare, anatomy, headline. Pure."""
