//! libtorch is linked and usable: autograd through `grid_sampler_2d` and one Adam step.

use dicyc_trainer::cli::smoke::{run, SmokeArgs};
use dicyc_trainer::device::DeviceChoice;

#[test]
fn one_adam_step_through_grid_sampler_reduces_the_loss() {
    let report = run(&SmokeArgs {
        device: DeviceChoice::Cpu,
        size: 16,
        seed: 7,
    })
    .unwrap();
    assert!(
        report.grad_norm > 0.0,
        "no gradient reached the offset conv: {report}"
    );
    assert!(
        report.loss_after < report.loss_before,
        "Adam step did not reduce the loss: {report}"
    );
}

#[test]
fn too_small_images_are_refused_with_a_message() {
    let err = run(&SmokeArgs {
        device: DeviceChoice::Cpu,
        size: 2,
        seed: 0,
    })
    .unwrap_err();
    assert!(err.to_string().contains("--size"), "{err}");
}
