//! Weight initialisation (docs/DESIGN.md §2.2, §2.6): every conv N(0, 0.02), biases 0,
//! offset convs N(0, 0.01) [ours] — small but non-zero so that the sampling gradient is not
//! zero at start.

use serde::{Deserialize, Serialize};
use tch::nn::{Init, Path};
use tch::Tensor;

/// Standard deviations of the normal initialisation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InitConfig {
    /// Std of every conv weight (CycleGAN: 0.02).
    pub std: f64,
    /// Std of the offset convs' weights [ours: 0.01].
    pub offset_std: f64,
}

impl Default for InitConfig {
    fn default() -> Self {
        InitConfig {
            std: 0.02,
            offset_std: 0.01,
        }
    }
}

/// A weight/bias pair.
#[derive(Debug)]
pub struct Conv {
    /// Kernel, OIHW (IOHW for transposed convs).
    pub weight: Tensor,
    /// Bias, one per output channel.
    pub bias: Tensor,
}

/// Creates `weight` (`dims`, N(0, std)) and `bias` (`bias_len` zeros) under `path`.
pub fn conv_params(path: &Path, dims: [i64; 4], bias_len: i64, std: f64) -> Conv {
    let weight = path.var(
        "weight",
        &dims,
        Init::Randn {
            mean: 0.0,
            stdev: std,
        },
    );
    let bias = path.var("bias", &[bias_len], Init::Const(0.0));
    Conv { weight, bias }
}
