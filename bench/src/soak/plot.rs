//! The soak's plot: one SVG with four panels over time (resident memory, open descriptors,
//! disk against its bound, and throughput), with the end of warm-up marked.

use std::path::Path;

use anyhow::{Context, Result};
use plotters::prelude::*;

use crate::Sample;

/// One line of a panel.
struct Line {
    label: &'static str,
    color: RGBColor,
    points: Vec<(f64, f64)>,
}

fn line(
    samples: &[Sample],
    label: &'static str,
    color: RGBColor,
    value: impl Fn(&Sample) -> f64,
) -> Line {
    Line {
        label,
        color,
        points: samples
            .iter()
            .map(|s| (s.seconds / 60.0, value(s)))
            .collect(),
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Requests answered per second between consecutive samples.
fn throughput(samples: &[Sample]) -> Vec<(f64, f64)> {
    samples
        .windows(2)
        .map(|pair| {
            let answered = |s: &Sample| {
                s.requests_ok + s.requests_refused + s.requests_throttled + s.requests_failed
            };
            let seconds = (pair[1].seconds - pair[0].seconds).max(f64::EPSILON);
            (
                pair[1].seconds / 60.0,
                (answered(&pair[1]) - answered(&pair[0])) as f64 / seconds,
            )
        })
        .collect()
}

/// Draws `samples` of `backend` into `path`.
///
/// # Errors
///
/// When the file cannot be written.
pub fn draw(path: &Path, backend: &str, samples: &[Sample], warmup_seconds: f64) -> Result<()> {
    let minutes = samples
        .last()
        .map_or(1.0, |s| s.seconds / 60.0)
        .max(1.0 / 60.0);
    let panels = [
        (
            format!("{backend}: resident memory (MiB)"),
            vec![line(samples, "RSS", RED, |s| mib(s.rss_bytes))],
        ),
        (
            format!("{backend}: open file descriptors"),
            vec![line(samples, "fds", BLUE, |s| s.open_fds as f64)],
        ),
        (
            format!("{backend}: disk (MiB)"),
            vec![
                line(samples, "database + WAL", RED, |s| mib(s.disk_bytes())),
                line(samples, "WAL", MAGENTA, |s| mib(s.wal_bytes)),
                line(samples, "live + retained history", BLUE, |s| {
                    mib(s.live_bytes + s.history_bytes)
                }),
                line(samples, "bound: 2 x (live + history)", BLACK, |s| {
                    mib(s.disk_bound())
                }),
            ],
        ),
        (
            format!("{backend}: requests answered per second"),
            vec![Line {
                label: "requests/s",
                color: GREEN,
                points: throughput(samples),
            }],
        ),
    ];
    let root = SVGBackend::new(path, (1000, 1400)).into_drawing_area();
    root.fill(&WHITE).context("drawing the background")?;
    for (area, (title, lines)) in root.split_evenly((panels.len(), 1)).iter().zip(panels) {
        let top = lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max)
            .max(1.0)
            * 1.1;
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(32)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..minutes, 0.0..top)
            .context("laying out a panel")?;
        chart
            .configure_mesh()
            .x_desc("minutes")
            .draw()
            .context("drawing the axes")?;
        let warmup = warmup_seconds / 60.0;
        chart
            .draw_series(LineSeries::new(
                [(warmup, 0.0), (warmup, top)],
                ShapeStyle::from(&BLACK.mix(0.6)).stroke_width(2),
            ))
            .context("drawing the warm-up mark")?
            .label("end of warm-up")
            .legend(|(x, y)| {
                PathElement::new(
                    [(x, y), (x + 16, y)],
                    ShapeStyle::from(&BLACK.mix(0.6)).stroke_width(2),
                )
            });
        for Line {
            label,
            color,
            points,
        } in lines
        {
            chart
                .draw_series(LineSeries::new(
                    points,
                    ShapeStyle::from(&color).stroke_width(2),
                ))
                .context("drawing a line")?
                .label(label)
                .legend(move |(x, y)| {
                    PathElement::new(
                        [(x, y), (x + 16, y)],
                        ShapeStyle::from(&color).stroke_width(2),
                    )
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .context("drawing the legend")?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))
}
