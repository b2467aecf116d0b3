"""Architecture rules that import-linter cannot express with its built-in contract types."""
