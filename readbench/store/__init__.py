"""The results store: results/<run-id>/ written atomically and read back."""
