"""The ranking metrics by name: the one list every evaluation, setting check and table uses (no torch here,
so settings can be checked without loading it)."""

METRICS = ("recall", "ndcg", "precision", "mrr", "hit")
DEFAULT_KS = (10, 20, 50, 100)
