//! Integration tests: specs parsed and run against real models.
