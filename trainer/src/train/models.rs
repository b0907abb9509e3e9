//! The four networks of a run: two generators and two PatchGAN discriminators, each in its
//! own `VarStore` so that a generator's parameter names are the core's tensor names.

use anyhow::Context;
use tch::nn::VarStore;
use tch::{Device, Tensor};

use super::config::TrainConfig;
use crate::model::{Discriminator, Generator};

/// The four networks, each in its own VarStore so the generators' names are the core's.
#[derive(Debug)]
pub struct Models {
    /// A → B generator weights.
    pub vs_g_ab: VarStore,
    /// B → A generator weights.
    pub vs_g_ba: VarStore,
    /// Discriminator of domain A.
    pub vs_d_a: VarStore,
    /// Discriminator of domain B.
    pub vs_d_b: VarStore,
    /// A → B generator.
    pub g_ab: Generator,
    /// B → A generator.
    pub g_ba: Generator,
    /// Judges domain A images.
    pub d_a: Discriminator,
    /// Judges domain B images.
    pub d_b: Discriminator,
}

impl Models {
    /// Builds and initialises the networks (seeds tch's RNG with `config.seed` first).
    pub fn new(config: &TrainConfig, device: Device) -> anyhow::Result<Models> {
        tch::manual_seed(config.seed as i64);
        let vs_g_ab = VarStore::new(device);
        let vs_g_ba = VarStore::new(device);
        let vs_d_a = VarStore::new(device);
        let vs_d_b = VarStore::new(device);
        let g_ab = Generator::new(&vs_g_ab.root(), &config.effective_generator(), &config.init)
            .context("building the A → B generator")?;
        let g_ba = Generator::new(
            &vs_g_ba.root(),
            &config.effective_generator_ba(),
            &config.init,
        )
        .context("building the B → A generator")?;
        let gen = &config.generator;
        let d_a = Discriminator::new(
            &vs_d_a.root(),
            gen.in_channels,
            &config.discriminator,
            &config.init,
        );
        let d_b = Discriminator::new(
            &vs_d_b.root(),
            gen.out_channels,
            &config.discriminator,
            &config.init,
        );
        Ok(Models {
            vs_g_ab,
            vs_g_ba,
            vs_d_a,
            vs_d_b,
            g_ab,
            g_ba,
            d_a,
            d_b,
        })
    }

    pub(super) fn stores(&self) -> [(&'static str, &VarStore); 4] {
        [
            ("g_ab", &self.vs_g_ab),
            ("g_ba", &self.vs_g_ba),
            ("d_a", &self.vs_d_a),
            ("d_b", &self.vs_d_b),
        ]
    }

    /// Every parameter as `(store.name, tensor)`, sorted by name (a stable order).
    pub fn named_parameters(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        for (store, vs) in self.stores() {
            let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            out.extend(vars.into_iter().map(|(n, t)| (format!("{store}.{n}"), t)));
        }
        out
    }
}

pub(super) fn params_of(vs: &VarStore, prefix: &str) -> Vec<(String, Tensor)> {
    let mut vars: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .map(|(n, t)| (format!("{prefix}.{n}"), t))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}
