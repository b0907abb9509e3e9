//! DicycleGAN's losses (docs/DESIGN.md §2.5): LSGAN on the deformed outputs, NMI alignment on the
//! undeformed outputs, the undeformed and the deformation-invariant cycle losses, and the
//! optional identity loss.

pub mod cycle;
pub mod gan;
pub mod nmi;

pub use cycle::l1;
pub use gan::{lsgan, lsgan_discriminator};
pub use nmi::{nmi, nmi_per_sample, NmiConfig, NmiNormalisation};
