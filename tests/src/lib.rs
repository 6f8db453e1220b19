//! Helpers for the guest tests.
