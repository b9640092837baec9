"""One module per command: each reads the workspace, calls the package, writes results."""
