//! Adam with state that can be saved and restored exactly (tch's built-in optimizer does not
//! expose its moment buffers). PyTorch's formula, bias correction included:
//! `m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²;
//!  p ← p − (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + ε)`.

use std::path::Path;

use anyhow::Context;
use tch::{Kind, Tensor};

use super::finite::first_non_finite;

/// Adam over a fixed list of named parameters (possibly from several VarStores).
#[derive(Debug)]
pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
    /// Learning rate used by the next [`Adam::step`].
    pub lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
}

impl Adam {
    /// An optimizer over `params` (name, trainable tensor) with zeroed moments.
    pub fn new(params: Vec<(String, Tensor)>, lr: f64, beta1: f64, beta2: f64, eps: f64) -> Adam {
        let zeros = |p: &(String, Tensor)| Tensor::zeros_like(&p.1).set_requires_grad(false);
        let m = params.iter().map(zeros).collect();
        let v = params.iter().map(zeros).collect();
        Adam {
            params,
            m,
            v,
            step: 0,
            lr,
            beta1,
            beta2,
            eps,
        }
    }

    /// Number of steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Clears the parameters' gradients.
    pub fn zero_grad(&mut self) {
        for (_, p) in &mut self.params {
            p.zero_grad();
        }
    }

    /// The name of the first parameter whose gradient holds a NaN or ±Inf (one host sync):
    /// a finite loss can still have a non-finite gradient, and [`Adam::step`] would write it
    /// into the weights and moments.
    pub fn non_finite_gradient(&self) -> Option<String> {
        let grads: Vec<(&str, Tensor)> = self
            .params
            .iter()
            .map(|(n, p)| (n.as_str(), p.grad()))
            .collect();
        first_non_finite(grads.iter().map(|(n, g)| (*n, g)))
    }

    /// One update of every parameter that has a gradient.
    pub fn step(&mut self) {
        self.step += 1;
        let t = self.step as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2_sqrt = (1.0 - self.beta2.powi(t)).sqrt();
        let step_size = self.lr / bc1;
        tch::no_grad(|| {
            for ((_, p), (m, v)) in self
                .params
                .iter()
                .zip(self.m.iter_mut().zip(self.v.iter_mut()))
            {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let _ = m
                    .g_mul_scalar_(self.beta1)
                    .g_add_(&(&g * (1.0 - self.beta1)));
                let _ = v
                    .g_mul_scalar_(self.beta2)
                    .g_add_(&(g.square() * (1.0 - self.beta2)));
                let denom = v.sqrt() / bc2_sqrt + self.eps;
                let update = m.divide(&denom) * step_size;
                let _ = p.shallow_clone().g_sub_(&update);
            }
        });
    }

    /// Saves the moments (`m.<name>`, `v.<name>`) and the step count (`step`, an i64
    /// scalar) as safetensors.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::with_capacity(2 * self.params.len() + 1);
        for ((name, _), (m, v)) in self.params.iter().zip(self.m.iter().zip(self.v.iter())) {
            named.push((format!("m.{name}"), m.to_device(tch::Device::Cpu)));
            named.push((format!("v.{name}"), v.to_device(tch::Device::Cpu)));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        Tensor::write_safetensors(&named, path)
            .with_context(|| format!("writing optimizer state {}", path.display()))
    }

    /// Restores what [`Adam::save`] wrote; every parameter's moments must be present with
    /// the same shape.
    pub fn load(&mut self, path: &Path) -> anyhow::Result<()> {
        let named: std::collections::HashMap<String, Tensor> = Tensor::read_safetensors(path)
            .with_context(|| format!("reading optimizer state {}", path.display()))?
            .into_iter()
            .collect();
        let get = |key: &str, like: &Tensor| -> anyhow::Result<Tensor> {
            let t = named
                .get(key)
                .with_context(|| format!("{}: no tensor {key}", path.display()))?;
            anyhow::ensure!(
                t.size() == like.size(),
                "{}: {key} has shape {:?}, expected {:?}",
                path.display(),
                t.size(),
                like.size()
            );
            Ok(t.to_kind(Kind::Float).to_device(like.device()))
        };
        for ((name, _), (m, v)) in self
            .params
            .iter()
            .zip(self.m.iter_mut().zip(self.v.iter_mut()))
        {
            *m = get(&format!("m.{name}"), m)?;
            *v = get(&format!("v.{name}"), v)?;
        }
        let step = named
            .get("step")
            .with_context(|| format!("{}: no step count", path.display()))?;
        self.step = step.int64_value(&[0]);
        Ok(())
    }
}
