//! The scratch plan: which buffers the generator needs at which step, where each lives in
//! the caller's scratch, and how big the scratch must be. One function (`plan`) computes
//! the layout; both [`required_scratch_bytes`] and [`crate::synthesize`] use it, so the
//! size query is exact by construction.
//!
//! Steps (forward order) and their buffers (activations fp16 CHW, work buffers f32):
//!
//! | step | reads | writes | work |
//! |---|---|---|---|
//! | 0 stem    | input (caller) | `A1` ngf·H·W | conv + offset(input) strip |
//! | 1 down.0  | `A1` | `A2` 2ngf·H/2·W/2 | conv + offset(down1) strip |
//! | 2 down.1  | `A2` | `A3` 4ngf·H/4·W/4 | conv + offset(down2) strip |
//! | 3 offset.block0 | `A3` | `P` | offset conv strip (resampled map materialised: it is also the skip) |
//! | 4 blocks  | `P` | `Q`, `R`, `P += IN(R)` | conv |
//! | 5 up.0    | `P` | `U1` 2ngf·H/2·W/2 | conv (4 phases) |
//! | 6 up.1    | `U1` | `U2` ngf·H·W | conv (4 phases) |
//! | 7 head    | `U2` | output (caller) | conv |
//!
//! Buffers whose lifetimes do not overlap share memory: offsets are assigned greedily,
//! largest first, lowest address that does not collide with a lifetime-overlapping buffer
//! (the TFLite-Micro planner). The layout depends only on `(config, h, w)`, never on the
//! pass, so one scratch size serves both passes.

use crate::config::{ModelConfig, OffsetSite};
use crate::error::Error;
use crate::ops::conv::{ConvGeom, Padding};
use crate::ops::resample::{offs_len, offset_geom};
use crate::ops::up_work_parts;
use crate::scratch::f32_region_bytes;
// The plan's public constants live in the leaf `scratch` module (the ops use them too);
// they stay reachable here, where callers sizing a scratch look for them.
pub use crate::scratch::{ALIGN, MAX_SIZE};

pub(crate) const A1: usize = 0;
pub(crate) const A2: usize = 1;
pub(crate) const A3: usize = 2;
pub(crate) const P: usize = 3;
pub(crate) const Q: usize = 4;
pub(crate) const R: usize = 5;
pub(crate) const U1: usize = 6;
pub(crate) const U2: usize = 7;
/// Work buffer of step `s` is `WORK + s`.
pub(crate) const WORK: usize = 8;
pub(crate) const NSTEPS: usize = 8;
pub(crate) const NBUF: usize = WORK + NSTEPS;

const LIFE: [(usize, usize); WORK] = [
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 5),
    (4, 4),
    (4, 4),
    (5, 6),
    (6, 7),
];

fn life(buf: usize) -> (usize, usize) {
    if buf < WORK {
        LIFE[buf]
    } else {
        (buf - WORK, buf - WORK)
    }
}

/// The convolutions of a generator at one image size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geoms {
    pub h: usize,
    pub w: usize,
    pub ngf: usize,
    pub cin: usize,
    pub cout: usize,
    pub stem: ConvGeom,
    pub down0: ConvGeom,
    pub down1: ConvGeom,
    pub block: ConvGeom,
    pub head: ConvGeom,
    /// Offset convs at the four sites (used only where the config has the layer).
    pub off: [ConvGeom; 4],
}

impl Geoms {
    pub fn new(config: &ModelConfig, h: usize, w: usize) -> Result<Geoms, Error> {
        config.validate()?;
        let bad = Error::BadDimensions {
            height: h,
            width: w,
        };
        if h % 4 != 0 || w % 4 != 0 || h < 8 || w < 8 || h > MAX_SIZE || w > MAX_SIZE {
            return Err(bad);
        }
        // The plan and the forward pass compute buffer sizes in `usize` (element counts
        // like `in_channels · h · w`, packed weights of the widest offset conv): on a
        // 32-bit target these must be rejected up front, never overflow. In u64 the bounds
        // below cannot overflow (`ngf` ≤ 1024, image channels ≤ 64, sides ≤ 2^15; the
        // widest offset conv has 8·ngf outputs).
        let widest = u64::from(config.ngf.max(config.in_channels).max(config.out_channels));
        let maps = widest * 16 * h as u64 * w as u64;
        let packed_weights = (8 * widest + 16) * (8 * widest + 16) * 9 * 4;
        if usize::try_from(maps.max(packed_weights)).is_err() {
            return Err(bad);
        }
        let ngf = config.ngf as usize;
        let cin = config.in_channels as usize;
        let cout = config.out_channels as usize;
        let (h2, w2, h4, w4) = (h / 2, w / 2, h / 4, w / 4);
        let conv =
            |ci, co, hh, ww, k, s, p, pad| ConvGeom::conv(ci, co, hh, ww, k, s, p, pad).ok_or(bad);
        // Every site's geometry, present or not (an absent one is never used), in the form
        // the configuration gives its layers.
        let form = config.offset_layers.form();
        let offset = |c: usize, hh, ww| {
            let fields = form.fields(u32::try_from(c).map_err(|_| bad)?) as usize;
            offset_geom(c, fields, hh, ww).ok_or(bad)
        };
        Ok(Geoms {
            h,
            w,
            ngf,
            cin,
            cout,
            stem: conv(cin, ngf, h, w, 7, 1, 3, Padding::Reflect)?,
            down0: conv(ngf, 2 * ngf, h, w, 3, 2, 1, Padding::Zero)?,
            down1: conv(2 * ngf, 4 * ngf, h2, w2, 3, 2, 1, Padding::Zero)?,
            block: conv(4 * ngf, 4 * ngf, h4, w4, 3, 1, 1, Padding::Reflect)?,
            head: conv(ngf, cout, h, w, 7, 1, 3, Padding::Reflect)?,
            off: [
                offset(cin, h, w)?,
                offset(ngf, h, w)?,
                offset(2 * ngf, h2, w2)?,
                offset(4 * ngf, h4, w4)?,
            ],
        })
    }
}

/// The f32 work buffers of one step, in carving order.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Parts {
    pub len: [usize; 8],
    pub n: usize,
}

impl Parts {
    fn push(&mut self, items: &[usize]) {
        for &v in items {
            self.len[self.n] = v;
            self.n += 1;
        }
    }
    /// The first four parts: a convolution's `[a, b, prow, c]`.
    pub fn conv(&self) -> [usize; 4] {
        [self.len[0], self.len[1], self.len[2], self.len[3]]
    }

    /// Total bytes of the parts (in u64, like every size in the plan until the final
    /// conversion); `None` if a part's bytes overflow `usize`.
    fn bytes(&self) -> Option<u64> {
        self.len[..self.n].iter().try_fold(0u64, |sum, &n| {
            sum.checked_add(u64::try_from(f32_region_bytes(n)?).ok()?)
        })
    }
}

/// Offset-strip parts `[a, prow, offs, ring]` of an offset layer feeding conv `next`
/// (its GEMM buffers are `next`'s, see `OffsetSource`).
pub(crate) fn strip_offset_parts(off: &ConvGeom, next: &ConvGeom) -> [usize; 4] {
    let [a, _, r, _] = off.parts();
    [a, r, offs_len(off), off.cin * next.tile_span() * off.in_w]
}

/// Work parts of step `step` (conv parts first, then offset parts if any).
pub(crate) fn step_parts(config: &ModelConfig, g: &Geoms, step: usize) -> Parts {
    let mut p = Parts::default();
    let has = |site| config.offset_layers.contains(site);
    let conv_step = |p: &mut Parts, conv: &ConvGeom, site: OffsetSite| {
        let mut parts = conv.parts();
        if has(site) {
            let off = &g.off[site as usize];
            // Packed B and the accumulators are shared with the offset conv (`OffsetSource`).
            parts[1] = parts[1].max(off.b_len());
            parts[3] = parts[3].max(off.c_len());
            p.push(&parts);
            p.push(&strip_offset_parts(off, conv));
        } else {
            p.push(&parts);
        }
    };
    match step {
        0 => conv_step(&mut p, &g.stem, OffsetSite::Input),
        1 => conv_step(&mut p, &g.down0, OffsetSite::Down1),
        2 => conv_step(&mut p, &g.down1, OffsetSite::Down2),
        3 => {
            if has(OffsetSite::FirstBlock) {
                let off = &g.off[3];
                p.push(&off.parts());
                p.push(&[offs_len(off)]);
            }
        }
        4 => {
            if config.n_blocks > 0 {
                p.push(&g.block.parts());
            }
        }
        5 => p.push(&up_work_parts(4 * g.ngf, 2 * g.ngf, g.h / 4, g.w / 4)),
        6 => p.push(&up_work_parts(2 * g.ngf, g.ngf, g.h / 2, g.w / 2)),
        _ => p.push(&g.head.parts()),
    }
    p
}

/// Byte offset and length of every buffer, and the total.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub off: [usize; NBUF],
    pub len: [usize; NBUF],
    pub total: usize,
}

/// First-fit placement of buffers in one of three orders: 0 = largest first; 1 =
/// activations (largest first) before work buffers (largest first); 2 = by first use,
/// largest first within a step. Returns offsets and the total.
fn place(len: &[u64; NBUF], ordering: usize) -> ([u64; NBUF], u64) {
    let key = |b: usize| -> (u64, u64) {
        match ordering {
            0 => (0, u64::MAX - len[b]),
            1 => (u64::from(b >= WORK), u64::MAX - len[b]),
            _ => (life(b).0 as u64, u64::MAX - len[b]),
        }
    };
    let mut order = [0usize; NBUF];
    for (i, o) in order.iter_mut().enumerate() {
        *o = i;
    }
    for i in 1..NBUF {
        let mut j = i;
        while j > 0 && key(order[j - 1]) > key(order[j]) {
            order.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut off = [0u64; NBUF];
    let mut placed = [false; NBUF];
    let mut total = 0u64;
    for &b in &order {
        placed[b] = true;
        if len[b] == 0 {
            continue;
        }
        let (s0, s1) = life(b);
        let mut cand = 0u64;
        loop {
            let mut moved = false;
            for o in 0..NBUF {
                if o == b || !placed[o] || len[o] == 0 {
                    continue;
                }
                let (t0, t1) = life(o);
                let overlap_life = s0 <= t1 && t0 <= s1;
                let overlap_mem = cand < off[o] + len[o] && off[o] < cand + len[b];
                if overlap_life && overlap_mem {
                    cand = off[o] + len[o];
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
        off[b] = cand;
        total = total.max(cand + len[b]);
    }
    (off, total)
}

/// Computes the scratch layout for `(config, h, w)`.
pub(crate) fn plan(config: &ModelConfig, h: usize, w: usize) -> Result<(Plan, Geoms), Error> {
    let g = Geoms::new(config, h, w)?;
    let bad = Error::BadDimensions {
        height: h,
        width: w,
    };
    let map = |c: usize, hh: usize, ww: usize| -> u64 {
        let n = c as u64 * hh as u64 * ww as u64;
        (n * 2).div_ceil(ALIGN as u64) * ALIGN as u64
    };
    let (ngf, h2, w2, h4, w4) = (g.ngf, h / 2, w / 2, h / 4, w / 4);
    let mut len = [0u64; NBUF];
    len[A1] = map(ngf, h, w);
    len[A2] = map(2 * ngf, h2, w2);
    len[A3] = map(4 * ngf, h4, w4);
    len[P] = len[A3];
    if config.n_blocks > 0 {
        len[Q] = len[A3];
        len[R] = len[A3];
    }
    len[U1] = map(2 * ngf, h2, w2);
    len[U2] = map(ngf, h, w);
    for s in 0..NSTEPS {
        len[WORK + s] = step_parts(config, &g, s).bytes().ok_or(bad)?;
    }
    // Every placed offset and end is at most the sum of all lengths: if that fits in
    // `usize`, no arithmetic below can overflow.
    let sum = len
        .iter()
        .try_fold(0u64, |a, &l| a.checked_add(l))
        .and_then(|s| s.checked_add(ALIGN as u64))
        .ok_or(bad)?;
    usize::try_from(sum).map_err(|_| bad)?;
    // Greedy placement under a few orderings; keep the smallest total.
    let mut best: Option<([u64; NBUF], u64)> = None;
    for ordering in 0..3 {
        let (off, total) = place(&len, ordering);
        if best.is_none_or(|(_, t)| total < t) {
            best = Some((off, total));
        }
    }
    let (off, total) = best.ok_or(Error::Internal)?;
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| bad);
    let mut p = Plan {
        off: [0; NBUF],
        len: [0; NBUF],
        total: to_usize(total)?,
    };
    for i in 0..NBUF {
        p.off[i] = to_usize(off[i])?;
        p.len[i] = to_usize(len[i])?;
    }
    // The caller's buffer may start anywhere: room to align its start.
    p.total.checked_add(ALIGN - 1).ok_or(bad)?;
    Ok((p, g))
}

/// Exact number of scratch bytes [`crate::synthesize`] needs for `config` at
/// `height × width` (either pass): the planned layout plus `ALIGN − 1` bytes so that a
/// buffer starting at any address can be aligned.
pub fn required_scratch_bytes(
    config: &ModelConfig,
    height: usize,
    width: usize,
) -> Result<usize, Error> {
    let (p, _) = plan(config, height, width)?;
    Ok(p.total + ALIGN - 1)
}

/// The layer-by-layer lower bound the scratch is measured against (docs/DESIGN.md §4.2):
/// the largest fp16 input + output pair of any conv layer of the generator at
/// `height × width` (offset layers are not counted as layers: the plan fuses them into the
/// next conv).
pub fn layer_by_layer_minimum_bytes(
    config: &ModelConfig,
    height: usize,
    width: usize,
) -> Result<usize, Error> {
    let g = Geoms::new(config, height, width)?;
    // In u64 (cannot overflow: channels ≤ 4·1024, sides ≤ 2^15), then checked into `usize`.
    let (h, w) = (g.h as u64, g.w as u64);
    let (full, half, quarter) = (h * w, (h / 2) * (w / 2), (h / 4) * (w / 4));
    let (cin, cout, ngf) = (g.cin as u64, g.cout as u64, g.ngf as u64);
    // (input elements, output elements) of stem, down.0, down.1, a block conv, up.0, up.1, head.
    let pairs = [
        (cin * full, ngf * full),
        (ngf * full, 2 * ngf * half),
        (2 * ngf * half, 4 * ngf * quarter),
        (4 * ngf * quarter, 4 * ngf * quarter),
        (4 * ngf * quarter, 2 * ngf * half),
        (2 * ngf * half, ngf * full),
        (ngf * full, cout * full),
    ];
    let bytes = pairs.iter().map(|(i, o)| 2 * (i + o)).max().unwrap_or(0);
    usize::try_from(bytes).map_err(|_| Error::BadDimensions { height, width })
}

/// Disjoint mutable views of buffers `ids` of an aligned scratch laid out by `plan`.
pub(crate) fn carve<'s, const N: usize>(
    scratch: &'s mut [u8],
    plan: &Plan,
    ids: [usize; N],
) -> Result<[&'s mut [u8]; N], Error> {
    let mut out: [&'s mut [u8]; N] = core::array::from_fn(|_| <&mut [u8]>::default());
    let mut order = ids.map(|i| i);
    let mut idx: [usize; N] = core::array::from_fn(|i| i);
    // Sort positions by offset.
    for i in 1..N {
        let mut j = i;
        while j > 0 && plan.off[order[j - 1]] > plan.off[order[j]] {
            order.swap(j - 1, j);
            idx.swap(j - 1, j);
            j -= 1;
        }
    }
    let mut rest = scratch;
    let mut pos = 0usize;
    for k in 0..N {
        let b = *order.get(k).ok_or(Error::Internal)?;
        if b >= NBUF {
            return Err(Error::Internal);
        }
        if plan.len[b] == 0 {
            continue;
        }
        let skip = plan.off[b].checked_sub(pos).ok_or(Error::Internal)?;
        let r = core::mem::take(&mut rest);
        if r.len() < skip + plan.len[b] {
            return Err(Error::Internal);
        }
        let (_, r) = r.split_at_mut(skip);
        let (region, r) = r.split_at_mut(plan.len[b]);
        out[idx[k]] = region;
        rest = r;
        pos = plan.off[b] + plan.len[b];
    }
    Ok(out)
}
