//! [`AnyNcsnpp`]: a typed [`Ncsnpp<C, H, W>`] for a shape known only at run time (from a
//! checkpoint or a data set). `C·H·W` images map one-to-one onto the variants of an enum,
//! one per compiled shape; every forward pass of the score model, the trainer and the
//! sampler goes through the variant's typed [`Ncsnpp::forward_flat`].
//!
//! Why an enum over a list of shapes rather than making `NcsnppScore` and `Trainer`
//! generic in `C, H, W`: those shapes come from files, so a generic type would only move the
//! same `match` into every command; the enum keeps one dispatch point, and code that knows its
//! shape at compile time uses `Ncsnpp<C, H, W>` directly, for any shape.

use dfdx::prelude::*;

use crate::ncsnpp::{Ncsnpp, NcsnppNet, Params};
use crate::ops::Elem;
use crate::ModelError;

macro_rules! any_ncsnpp {
    ($($variant:ident = ($c:literal, $h:literal, $w:literal)),* $(,)?) => {
        /// An NCSN++ whose image shape is one of the compiled shapes ([`AnyNcsnpp::SHAPES`]:
        /// 1 or 3 channels, square sides 8, 16, 28, 32, 64, 128 and 256).
        ///
        /// ```
        /// use dfdx::prelude::*;
        /// use scoreprior_models::ncsnpp::{AnyNcsnpp, NcsnppConfig, NcsnppNet};
        /// let net = AnyNcsnpp::new(NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 8).unwrap()).unwrap();
        /// let dev = Cpu::default();
        /// let p = net.params::<f32>(&dev, &net.net().init_params(&mut rand::thread_rng())).unwrap();
        /// let x: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(2, 64));
        /// assert_eq!(net.forward_flat(&p, x.clone(), &[0.5, 0.5], None).unwrap().shape(), &(2, 64));
        /// assert!(net.forward_flat(&p, x, &[0.5], None).is_err()); // one time per image
        /// // A shape that is not compiled is an error naming the ones that are.
        /// let odd = NcsnppNet::new(NcsnppConfig::tiny(), 1, 8, 12).unwrap();
        /// assert!(AnyNcsnpp::new(odd).unwrap_err().to_string().contains("(1, 16, 16)"));
        /// ```
        #[derive(Debug, Clone)]
        #[non_exhaustive]
        pub enum AnyNcsnpp {
            $(
                #[doc = concat!("`", stringify!($c), "×", stringify!($h), "×", stringify!($w), "` images.")]
                $variant(Ncsnpp<$c, $h, $w>),
            )*
        }

        impl AnyNcsnpp {
            /// The compiled image shapes `(c, h, w)`.
            pub const SHAPES: &'static [(usize, usize, usize)] = &[$(($c, $h, $w)),*];

            /// The typed network for `net`'s image shape.
            ///
            /// # Errors
            /// [`ModelError::UncompiledShape`] if the shape is not one of [`AnyNcsnpp::SHAPES`].
            pub fn new(net: NcsnppNet) -> Result<Self, ModelError> {
                match net.image_shape() {
                    $(($c, $h, $w) => Ok(Self::$variant(Ncsnpp::from_net(net)?)),)*
                    shape => Err(ModelError::UncompiledShape { shape }),
                }
            }

            /// The run-time network (configuration, shape, parameter specifications).
            pub fn net(&self) -> &NcsnppNet {
                match self {
                    $(Self::$variant(n) => n.net(),)*
                }
            }

            /// [`Ncsnpp::forward_flat`] of the variant.
            pub fn forward_flat<E: Elem, T: Tape<E, Cpu>>(
                &self,
                p: &Params<E>,
                x: Tensor<(usize, usize), E, Cpu, T>,
                t: &[f64],
                dropout: Option<&mut rand_chacha::ChaCha8Rng>,
            ) -> Result<Tensor<(usize, usize), E, Cpu, T>, ModelError>
            where
                Cpu: Device<E>,
            {
                match self {
                    $(Self::$variant(n) => n.forward_flat(p, x, t, dropout),)*
                }
            }
        }
    };
}

any_ncsnpp! {
    Gray8 = (1, 8, 8),
    Gray16 = (1, 16, 16),
    Gray28 = (1, 28, 28),
    Gray32 = (1, 32, 32),
    Gray64 = (1, 64, 64),
    Gray128 = (1, 128, 128),
    Gray256 = (1, 256, 256),
    Rgb8 = (3, 8, 8),
    Rgb16 = (3, 16, 16),
    Rgb28 = (3, 28, 28),
    Rgb32 = (3, 32, 32),
    Rgb64 = (3, 64, 64),
    Rgb128 = (3, 128, 128),
    Rgb256 = (3, 256, 256),
}

impl AnyNcsnpp {
    /// Image shape `(c, h, w)`.
    pub fn image_shape(&self) -> (usize, usize, usize) {
        self.net().image_shape()
    }
    /// Values per image, `c·h·w`.
    pub fn dim(&self) -> usize {
        let (c, h, w) = self.image_shape();
        c * h * w
    }
    /// Parameter tensors from flat values.
    pub fn params<E: Elem>(&self, dev: &Cpu, values: &[Vec<f32>]) -> Result<Params<E>, ModelError>
    where
        Cpu: Device<E>,
    {
        Params::from_values(dev, self.net().specs(), values)
    }
}
