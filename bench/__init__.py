"""jaxconv's benchmark: layer suites, whole networks, reports (`python -m bench`)."""
