//! Integration tests of the engines against fixtures made by the libraries
//! themselves (see `tests/fixtures/make_fixtures.py`).
