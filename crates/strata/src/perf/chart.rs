//! SVG charts of bench results: throughput over time, and latency percentiles.

use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::bench::Sample;
use super::stats::Summary;

pub fn draw(path: &Path, title: &str, samples: &[Sample], summary: &Summary) -> Result<()> {
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| anyhow!("{e}"))?;
    let (upper, lower) = root.split_vertically(400);

    // A run too short for two samples is drawn as its average over its length.
    let average;
    let samples = if samples.len() >= 2 {
        samples
    } else {
        let end = summary.elapsed_s.max(0.001);
        average = [
            Sample {
                t_s: 0.0,
                records_per_s: summary.records_per_s,
                mb_per_s: summary.mb_per_s,
            },
            Sample {
                t_s: end,
                records_per_s: summary.records_per_s,
                mb_per_s: summary.mb_per_s,
            },
        ];
        &average[..]
    };
    let t_max = samples.iter().map(|s| s.t_s).fold(0.001, f64::max);
    let y_max = samples.iter().map(|s| s.mb_per_s).fold(0.001, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&upper)
        .caption("throughput over time", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..t_max, 0.0..y_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("MB/s")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(LineSeries::new(
            samples.iter().map(|s| (s.t_s, s.mb_per_s)),
            &BLUE,
        ))
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(
            samples
                .iter()
                .map(|s| Circle::new((s.t_s, s.mb_per_s), 3, BLUE.filled())),
        )
        .map_err(|e| anyhow!("{e}"))?;

    let percentiles = [
        ("p50", summary.p50_ms),
        ("p95", summary.p95_ms),
        ("p99", summary.p99_ms),
        ("p99.9", summary.p999_ms),
        ("max", summary.latency_max_ms),
    ];
    let l_max = percentiles.iter().map(|(_, v)| *v).fold(0.001, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&lower)
        .caption("latency percentiles (ms)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d((0..percentiles.len()).into_segmented(), 0.0..l_max)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => percentiles
                .get(*i)
                .map(|(n, _)| n.to_string())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .y_desc("ms")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(percentiles.iter().enumerate().map(|(i, (_, v))| {
            let mut bar = Rectangle::new(
                [
                    (SegmentValue::Exact(i), 0.0),
                    (SegmentValue::Exact(i + 1), *v),
                ],
                RED.mix(0.6).filled(),
            );
            bar.set_margin(0, 0, 10, 10);
            bar
        }))
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
