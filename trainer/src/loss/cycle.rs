//! L1 reconstruction losses (cycle, deformation-invariant cycle, identity).

use tch::{Kind, Tensor};

/// Mean absolute error (PyTorch's `L1Loss`, mean reduction).
pub fn l1(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).abs().mean(Kind::Float)
}
