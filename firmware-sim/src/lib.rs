//! `dicyc-firmware-sim`: the edge device, simulated on the workstation.
//!
//! It holds weights the way a device does (a flash image read in place) and runs the
//! `dicyc-core` generator within a fixed RAM budget, so that a deployment can be proven
//! correct before any device is touched. It links no libtorch.

pub mod cli;
pub mod device;
pub mod fault;
pub mod flash;
pub mod inspect;
pub mod profile;
pub mod run;
pub mod verify;
