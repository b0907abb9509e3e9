//! Tissue parameters (BrainWeb 1.5 T) and the spin-echo signal equation.

use serde::{Deserialize, Serialize};

/// Relaxation times (ms) and proton density of one tissue.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Tissue {
    /// T1 (ms).
    pub t1: f64,
    /// T2 (ms).
    pub t2: f64,
    /// Proton density (relative to CSF).
    pub pd: f64,
}

/// BrainWeb 1.5 T parameters (Kwan, Evans & Pike 1999; Cocosco et al. 1997).
pub const CSF: Tissue = Tissue {
    t1: 2569.0,
    t2: 329.0,
    pd: 1.00,
};
/// Grey matter, BrainWeb 1.5 T.
pub const GM: Tissue = Tissue {
    t1: 833.0,
    t2: 83.0,
    pd: 0.86,
};
/// White matter, BrainWeb 1.5 T.
pub const WM: Tissue = Tissue {
    t1: 500.0,
    t2: 70.0,
    pd: 0.77,
};

/// Spin-echo signal `S = PD · (1 − e^(−TR/T1)) · e^(−TE/T2)`.
pub fn spin_echo(t: &Tissue, tr: f64, te: f64) -> f64 {
    t.pd * (1.0 - (-tr / t.t1).exp()) * (-te / t.t2).exp()
}
