"""The live dashboard: incremental history of each experiment and the page's static files."""
