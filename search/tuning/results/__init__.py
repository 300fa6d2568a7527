"""What a study yields, read after or beside its search: the summary and status, the HTML
report, the trials export and retrain choose, the seed-averaged final selection, and artifacts
of retrains. The top room of the search side."""
