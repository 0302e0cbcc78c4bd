// The Rust code blocks of the README and of the book (`docs/src/`), compiled and run as doc
// tests by `cargo test --workspace --release`: one item per Markdown file that has a `rust`
// block (a page without one needs no item).

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/src/guide/logprob.md")]
pub struct LogprobGuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/src/guide/forward-models.md")]
pub struct ForwardModelsGuideDoctests;

#[cfg(doctest)]
#[doc = include_str!("../docs/src/guide/own-experiment.md")]
pub struct OwnExperimentGuideDoctests;
