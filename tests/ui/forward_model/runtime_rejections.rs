// Every chain that the run-time builder (`build_chain`) rejects on a 1×16×16 image, one
// struct per line: each must also be a compile-time error, or the expansion's
// `.expect("checked at compile time")` would panic at run time. `tests/ui.rs` checks that
// `build_chain` rejects every chain below and that the expected output has an error on
// every struct's line. The list follows the rejections in `scoreprior_core::forward::spec`.
use scoreprior_core::forward::forward_model;

#[forward_model(input = [1, 16, 16], ops = [downsample(factor = 2)], noise = gaussian(sigma = 0.1))] pub struct R00; // unknown primitive
#[forward_model(input = [1, 16, 16], ops = [subsample(step = 2)], noise = gaussian(sigma = 0.1))] pub struct R01; // unknown parameter
#[forward_model(input = [1, 16, 16], ops = [identity(x = 1)], noise = gaussian(sigma = 0.1))] pub struct R02; // parameter of a parameterless primitive
#[forward_model(input = [1, 16, 16], ops = [scale], noise = gaussian(sigma = 0.1))] pub struct R03; // missing scale factor
#[forward_model(input = [1, 16, 16], ops = [mask], noise = gaussian(sigma = 0.1))] pub struct R04; // missing mask keep
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 1)], noise = gaussian(sigma = 0.1))] pub struct R05; // missing blur size
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(size = 3)], noise = gaussian(sigma = 0.1))] pub struct R06; // missing blur sigma
#[forward_model(input = [1, 16, 16], ops = [box_blur], noise = gaussian(sigma = 0.1))] pub struct R07; // missing box size
#[forward_model(input = [1, 16, 16], ops = [motion_blur], noise = gaussian(sigma = 0.1))] pub struct R08; // missing motion length
#[forward_model(input = [1, 16, 16], ops = [subsample], noise = gaussian(sigma = 0.1))] pub struct R09; // missing subsample factor
#[forward_model(input = [1, 16, 16], ops = [avg_pool], noise = gaussian(sigma = 0.1))] pub struct R10; // missing pool factor
#[forward_model(input = [1, 16, 16], ops = [crop(height = 4)], noise = gaussian(sigma = 0.1))] pub struct R11; // missing crop width
#[forward_model(input = [1, 16, 16], ops = [fft2, cartesian_mask], noise = gaussian(sigma = 0.1))] pub struct R12; // missing acceleration
#[forward_model(input = [1, 16, 16], ops = [dft_lowpass], noise = gaussian(sigma = 0.1))] pub struct R13; // missing k
#[forward_model(input = [1, 16, 16], ops = [gaussian_matrix], noise = gaussian(sigma = 0.1))] pub struct R14; // missing m
#[forward_model(input = [1, 16, 16], ops = [scale(factor = two)], noise = gaussian(sigma = 0.1))] pub struct R15; // word for a number
#[forward_model(input = [1, 16, 16], ops = [mask(keep = 1.5)], noise = gaussian(sigma = 0.1))] pub struct R16; // keep above 1
#[forward_model(input = [1, 16, 16], ops = [mask(keep = 0)], noise = gaussian(sigma = 0.1))] pub struct R17; // keep 0
#[forward_model(input = [1, 16, 16], ops = [mask(keep = 0.5, seed = -1)], noise = gaussian(sigma = 0.1))] pub struct R18; // negative seed
#[forward_model(input = [1, 16, 16], ops = [mask(keep = 0.5, seed = 1.5)], noise = gaussian(sigma = 0.1))] pub struct R19; // fractional seed
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 0, size = 3)], noise = gaussian(sigma = 0.1))] pub struct R20; // zero blur width
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 1, size = 0)], noise = gaussian(sigma = 0.1))] pub struct R21; // zero kernel size
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 1, size = 2.5)], noise = gaussian(sigma = 0.1))] pub struct R22; // fractional kernel size
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 1, size = 3, boundary = mirror)], noise = gaussian(sigma = 0.1))] pub struct R23; // unknown boundary
#[forward_model(input = [1, 16, 16], ops = [box_blur(size = 3, boundary = 1)], noise = gaussian(sigma = 0.1))] pub struct R24; // numeric boundary
#[forward_model(input = [1, 16, 16], ops = [gaussian_blur(sigma = 1, size = 17)], noise = gaussian(sigma = 0.1))] pub struct R25; // kernel larger than image
#[forward_model(input = [1, 16, 16], ops = [box_blur(size = 0)], noise = gaussian(sigma = 0.1))] pub struct R26; // zero box size
#[forward_model(input = [1, 16, 16], ops = [box_blur(size = 17)], noise = gaussian(sigma = 0.1))] pub struct R27; // box larger than image
#[forward_model(input = [1, 16, 16], ops = [motion_blur(length = 0)], noise = gaussian(sigma = 0.1))] pub struct R28; // zero motion length
#[forward_model(input = [1, 16, 16], ops = [motion_blur(length = 20, angle = 45)], noise = gaussian(sigma = 0.1))] pub struct R29; // motion longer than image
#[forward_model(input = [1, 16, 16], ops = [subsample(factor = 0)], noise = gaussian(sigma = 0.1))] pub struct R30; // zero subsample factor
#[forward_model(input = [1, 16, 16], ops = [subsample(factor = 3)], noise = gaussian(sigma = 0.1))] pub struct R31; // subsample factor not dividing
#[forward_model(input = [1, 16, 16], ops = [subsample(factor = 1.5)], noise = gaussian(sigma = 0.1))] pub struct R32; // fractional subsample factor
#[forward_model(input = [1, 16, 16], ops = [avg_pool(factor = 0)], noise = gaussian(sigma = 0.1))] pub struct R33; // zero pool factor
#[forward_model(input = [1, 16, 16], ops = [avg_pool(factor = 5)], noise = gaussian(sigma = 0.1))] pub struct R34; // pool factor not dividing
#[forward_model(input = [1, 16, 16], ops = [crop(top = 10, height = 10, width = 4)], noise = gaussian(sigma = 0.1))] pub struct R35; // crop outside
#[forward_model(input = [1, 16, 16], ops = [crop(height = 0, width = 4)], noise = gaussian(sigma = 0.1))] pub struct R36; // empty crop
#[forward_model(input = [1, 16, 16], ops = [pad(top = -1)], noise = gaussian(sigma = 0.1))] pub struct R37; // negative padding
#[forward_model(input = [1, 16, 16], ops = [ifft2], noise = gaussian(sigma = 0.1))] pub struct R38; // ifft2 of real data
#[forward_model(input = [1, 16, 16], ops = [magnitude], noise = gaussian(sigma = 0.1))] pub struct R39; // magnitude of real data
#[forward_model(input = [1, 16, 16], ops = [fft2, cartesian_mask(acceleration = 0)], noise = gaussian(sigma = 0.1))] pub struct R40; // zero acceleration
#[forward_model(input = [1, 16, 16], ops = [fft2, poisson_mask(acceleration = -2)], noise = gaussian(sigma = 0.1))] pub struct R41; // negative acceleration
#[forward_model(input = [1, 16, 16], ops = [fft2, poisson_mask(acceleration = 2, center = 20)], noise = gaussian(sigma = 0.1))] pub struct R42; // centre larger than k-space
#[forward_model(input = [1, 16, 16], ops = [fft2, cartesian_mask(acceleration = 16, center = 8)], noise = gaussian(sigma = 0.1))] pub struct R43; // cartesian acceleration vs centre
#[forward_model(input = [1, 16, 16], ops = [fft2, poisson_mask(acceleration = 16, center = 8)], noise = gaussian(sigma = 0.1))] pub struct R44; // poisson acceleration vs centre
#[forward_model(input = [1, 16, 16], ops = [dft_lowpass(k = 0)], noise = gaussian(sigma = 0.1))] pub struct R45; // zero dft block
#[forward_model(input = [1, 16, 16], ops = [dft_lowpass(k = 17)], noise = gaussian(sigma = 0.1))] pub struct R46; // dft block larger than image
#[forward_model(input = [1, 16, 16], ops = [gaussian_matrix(m = 0)], noise = gaussian(sigma = 0.1))] pub struct R47; // zero rows

fn main() {}
