//! Alternating A/B rounds with CPU and RSS accounting, and the per-measurement summary.

use std::time::Duration;

use pochta_loadgen::stats::median;

use crate::procs::{cpu_seconds, own_cpu_seconds, MemSampler};

/// One side's run in one round.
#[derive(Debug, Clone)]
pub(crate) struct Round {
    pub(crate) rate: f64,
    pub(crate) units: usize,
    pub(crate) cpu_s: f64,
    pub(crate) p99_ms: Option<f64>,
}

/// What a load function reports: units done (messages, auths), wall time, p99 if known.
pub(crate) struct LoadResult {
    pub(crate) units: usize,
    pub(crate) elapsed: Duration,
    pub(crate) p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct SideResult {
    pub(crate) rounds: Vec<Round>,
    /// Highest sum of Pss over the server's processes.
    pub(crate) peak_kib: u64,
    /// Largest VmHWM of any one of them.
    pub(crate) hwm_kib: u64,
}

impl SideResult {
    pub(crate) fn median_rate(&self) -> f64 {
        median(&self.rounds.iter().map(|r| r.rate).collect::<Vec<_>>())
    }
    pub(crate) fn range(&self) -> (f64, f64) {
        let it = self.rounds.iter().map(|r| r.rate);
        (
            it.clone().fold(f64::INFINITY, f64::min),
            it.fold(0.0, f64::max),
        )
    }
    /// Median CPU seconds per 1,000 units.
    pub(crate) fn cpu_per_1k(&self) -> f64 {
        median(
            &self
                .rounds
                .iter()
                .map(|r| r.cpu_s * 1000.0 / r.units.max(1) as f64)
                .collect::<Vec<_>>(),
        )
    }
    pub(crate) fn p99(&self) -> Option<f64> {
        let v: Vec<f64> = self.rounds.iter().filter_map(|r| r.p99_ms).collect();
        (!v.is_empty()).then(|| median(&v))
    }
}

/// A server under test: the processes to account and a liveness check.
pub(crate) struct Side<'a> {
    pub(crate) label: String,
    pub(crate) roots: Vec<i32>,
    pub(crate) check: Box<dyn FnMut() -> Result<(), String> + 'a>,
}

/// A finished measurement (side 0 = the peer, side 1 = pochta).
#[derive(Debug, Clone)]
pub(crate) struct Measurement {
    pub(crate) name: String,
    pub(crate) load: String,
    pub(crate) unit: &'static str,
    pub(crate) per: &'static str,
    pub(crate) peer: String,
    pub(crate) sides: [SideResult; 2],
}

impl Measurement {
    pub(crate) fn ratio(&self) -> f64 {
        self.sides[1].median_rate() / self.sides[0].median_rate().max(1e-9)
    }
}

/// Runs a discarded warm-up round and `rounds` measured rounds; the side that goes first
/// alternates every round. `load(side, warmup)` applies the load and must fail when the
/// server did not do all the work it was given.
pub(crate) fn run_rounds(
    name: &str,
    rounds: usize,
    sides: &mut [Side<'_>; 2],
    mut load: impl FnMut(usize, bool) -> Result<LoadResult, String>,
) -> Result<[SideResult; 2], String> {
    let mut out: [SideResult; 2] = Default::default();
    for r in 0..=rounds {
        let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
        for s in order {
            let side = &mut sides[s];
            (side.check)().map_err(|e| format!("{name}: before round {r}: {e}"))?;
            let sampler = MemSampler::start(side.roots.clone());
            let cpu0 = cpu_seconds(&side.roots);
            let client0 = own_cpu_seconds();
            let res = load(s, r == 0);
            let client1 = own_cpu_seconds();
            let cpu1 = cpu_seconds(&side.roots);
            let (peak, hwm) = sampler.finish();
            let res = res.map_err(|e| format!("{name}: {} round {r}: {e}", side.label))?;
            (side.check)().map_err(|e| format!("{name}: after round {r}: {e}"))?;
            let secs = res.elapsed.as_secs_f64().max(1e-9);
            let round = Round {
                rate: res.units as f64 / secs,
                units: res.units,
                cpu_s: cpu1 - cpu0,
                p99_ms: res.p99_ms,
            };
            println!(
                "  {name} {} {:<8} {:>9.0}/s  ({} in {:.2} s, server CPU {:.2} s, \
                 client CPU {:.2} s{})",
                if r == 0 {
                    "warm-up".to_owned()
                } else {
                    format!("round {r}")
                },
                side.label,
                round.rate,
                round.units,
                secs,
                round.cpu_s,
                client1 - client0,
                round
                    .p99_ms
                    .map(|p| format!(", p99 {p:.2} ms"))
                    .unwrap_or_default()
            );
            out[s].peak_kib = out[s].peak_kib.max(peak);
            out[s].hwm_kib = out[s].hwm_kib.max(hwm);
            if r > 0 {
                out[s].rounds.push(round);
            }
        }
    }
    Ok(out)
}

/// Markdown table of measurements.
pub(crate) fn table(ms: &[Measurement]) -> String {
    let mut t = String::from(
        "| measurement | peer | peer median | pochta median | ratio | peer range | pochta range \
         | CPU s / 1,000 (peer / pochta) | peak PSS MiB (peer / pochta) \
         | max VmHWM MiB (peer / pochta) | p99 ms (peer / pochta) |\n\
         |---|---|---:|---:|---:|---|---|---|---|---|---|\n",
    );
    for m in ms {
        let [p, q] = &m.sides;
        let (pl, ph) = p.range();
        let (ql, qh) = q.range();
        let p99 = match (p.p99(), q.p99()) {
            (Some(a), Some(b)) => format!("{a:.2} / {b:.2}"),
            _ => "—".into(),
        };
        t.push_str(&format!(
            "| {} | {} | {:.0} {u} | {:.0} {u} | **{:.2}×** | {pl:.0}–{ph:.0} | {ql:.0}–{qh:.0} \
             | {:.3} / {:.3} per {} | {:.1} / {:.1} | {:.1} / {:.1} | {p99} |\n",
            m.name,
            m.peer,
            p.median_rate(),
            q.median_rate(),
            m.ratio(),
            p.cpu_per_1k(),
            q.cpu_per_1k(),
            m.per,
            p.peak_kib as f64 / 1024.0,
            q.peak_kib as f64 / 1024.0,
            p.hwm_kib as f64 / 1024.0,
            q.hwm_kib as f64 / 1024.0,
            u = m.unit,
        ));
    }
    t
}
