"""Generated code and message types for msgarchive.v1."""
