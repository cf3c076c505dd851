"""Tests of the REST API (a package, so its modules do not clash with other test dirs)."""
