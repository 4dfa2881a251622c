//! redsnap
