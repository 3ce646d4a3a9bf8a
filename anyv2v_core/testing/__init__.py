"""Tools for testing anyv2v and its plugins: tiny models and the conformance kit."""
