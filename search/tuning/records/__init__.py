"""What a study and its trials hold, and how it is read: the user-attribute keys, the study's
settings, a config as attributes, the counts, the best trials. The bottom room of the search
side: it imports Optuna, never torch, and nothing above it."""
