"""Client tests: CloudreveClient against the real bundled server."""
