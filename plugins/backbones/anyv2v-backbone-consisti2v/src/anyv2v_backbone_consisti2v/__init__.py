"""ConsistI2V backbone plugin for anyv2v (see README.md)."""
