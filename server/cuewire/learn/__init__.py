"""Rules that learn: a feature vector per session (features.py), behavioural segments and a
purchase propensity trained offline (``cuewire segment`` / ``cuewire train``, training.py with
scikit-learn) and evaluated by the server in pure Python from JSON files (models.py)."""
