"""Jobs the runner selects by name."""
