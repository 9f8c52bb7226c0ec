"""Pure statistics: paired comparisons of two models on the same rows."""
