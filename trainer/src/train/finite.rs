//! Finiteness checks over many tensors with one host sync: a device round trip per tensor
//! and step would stall a GPU, so the per-tensor flags are reduced on the device first and
//! only a failure pays for finding the culprit.

use tch::Tensor;

/// The name of the first tensor holding a NaN or ±Inf, if any (undefined tensors, e.g.
/// gradients of unused parameters, are skipped). One device reduction and a single host sync
/// when everything is finite; the per-tensor search only runs after a failure.
pub fn first_non_finite<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
) -> Option<String> {
    let tensors: Vec<(&str, &Tensor)> = tensors.into_iter().filter(|(_, t)| t.defined()).collect();
    if tensors.is_empty() {
        return None;
    }
    let flags: Vec<Tensor> =
        tch::no_grad(|| tensors.iter().map(|(_, t)| t.isfinite().all()).collect());
    if Tensor::stack(&flags, 0).all().int64_value(&[]) == 1 {
        return None;
    }
    tensors
        .iter()
        .zip(&flags)
        .find(|(_, flag)| flag.int64_value(&[]) == 0)
        .map(|((name, _), _)| (*name).to_string())
}
