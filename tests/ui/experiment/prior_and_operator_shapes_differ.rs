// A prior declared for 16×16 images paired with an operator on 32×32 images.
use scoreprior::prelude::*;

#[forward_model(input = [1, 32, 32], ops = [gaussian_blur(sigma = 1.0, size = 5)], noise = gaussian(sigma = 0.05))]
struct Blur32;

fn main() {
    let g = Gaussian::diagonal(vec![0.5; 256], &[0.04; 256], AnySde::Vp(VpSde::default())).unwrap();
    let prior = ShapedPrior::<1, 16, 16>::new(Prior::gaussian(g));
    let _ = Experiment::typed(Blur32, prior);
}
