//! Integration tests for pochta (see tests/it).
