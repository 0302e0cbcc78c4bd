// A 16×16 network fed 32×32 images: the image shape is part of the type, so this must not
// compile.
use scoreprior::models::dfdx::prelude::*;
use scoreprior::models::ncsnpp::{Ncsnpp, NcsnppConfig};

fn main() {
    let net = Ncsnpp::<1, 16, 16>::new(NcsnppConfig::small()).unwrap();
    let dev = Cpu::default();
    let p = net.params::<f32>(&dev, &net.net().init_params(&mut rand::thread_rng())).unwrap();
    let x: Tensor<(usize, Const<1>, Const<32>, Const<32>), f32, Cpu> = dev.zeros_like(&(2, Const, Const, Const));
    let _ = net.forward(&p, x, &[0.5, 0.5]);
}
