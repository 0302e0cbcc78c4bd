//! models
pub mod realnvp;
