//! API types (placeholder, being written).
