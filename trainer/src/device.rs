//! Which libtorch device the trainer computes on.

use tch::Device;

/// The device the user asked for: `auto` picks the first CUDA GPU when libtorch sees one.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// CUDA when available, else CPU.
    #[default]
    Auto,
    /// Always the CPU.
    Cpu,
    /// The first CUDA GPU; an error when none is visible.
    Cuda,
}

impl DeviceChoice {
    /// Resolves the choice against what libtorch can see.
    pub fn resolve(self) -> anyhow::Result<Device> {
        match self {
            DeviceChoice::Auto => Ok(Device::cuda_if_available()),
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            DeviceChoice::Cuda => anyhow::bail!(
                "--device cuda: libtorch sees no CUDA device (is an NVIDIA driver installed? \
                 `nvidia-smi` should list a GPU); use --device auto or cpu"
            ),
        }
    }
}

/// One line describing what libtorch offers here, for logs and `trainer info`.
pub fn describe() -> String {
    let cuda = if tch::Cuda::is_available() {
        format!(
            "CUDA available ({} device(s), cuDNN {})",
            tch::Cuda::device_count(),
            tch::Cuda::cudnn_is_available()
        )
    } else {
        "CUDA not available".to_string()
    };
    format!(
        "libtorch {} ; {cuda}; {} CPU threads",
        tch_version(),
        tch::get_num_threads()
    )
}

fn tch_version() -> &'static str {
    // torch-sys is built against exactly this PyTorch release (tools/setup-libtorch.sh).
    "2.13.0"
}
