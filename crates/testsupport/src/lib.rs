//! testsupport
