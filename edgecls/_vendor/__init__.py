"""Third-party code kept in the tree: see README.md for where each file came from."""
