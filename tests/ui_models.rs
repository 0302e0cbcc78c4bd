//! Compile-time image shapes of `scoreprior_models::ncsnpp::Ncsnpp` (trybuild): feeding a
//! network images of another size or channel count is a type error.

#[test]
fn ui_models() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/models/*.rs");
}
