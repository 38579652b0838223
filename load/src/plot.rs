//! The latency-distribution picture: percentile curves per target on a
//! "nines" axis (90%, 99%, 99.9%, ...), where proxy tails show up.

use std::path::Path;

use plotters::prelude::*;

use crate::compare::Comparison;
use crate::stats::{Report, ALL, CHAT, FORBIDDEN, LIST, STREAM_TTFT};

/// x position of quantile q: -log10(1 - q); 99.99% → 4.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-4).log10()
}

fn nines_label(x: f64) -> String {
    match x.round() as i32 {
        0 => "0%".into(),
        1 => "90%".into(),
        2 => "99%".into(),
        3 => "99.9%".into(),
        _ => "99.99%".into(),
    }
}

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// The points of one series, without the final max point (it has no
/// percentile position), keeping x inside 0..=4.
fn points(r: &Report, series: &str) -> Vec<(f64, f64)> {
    r.series
        .get(series)
        .map(|s| {
            s.curve
                .iter()
                .filter(|p| p[0] < 1.0)
                .map(|p| (nines(p[0]), p[1].max(0.001)))
                .collect()
        })
        .unwrap_or_default()
}

pub fn render(c: &Comparison, out: &Path) -> anyhow::Result<()> {
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("plot: {e}");
    let panels: [(&str, &[Report], &str); 6] = [
        ("all requests, saturation (closed loop)", &c.runs, ALL),
        ("all requests, ~50% load (open loop)", &c.half_load, ALL),
        ("GET /api/models", &c.runs, LIST),
        ("chat completion (JSON)", &c.runs, CHAT),
        ("chat stream: time to first token", &c.runs, STREAM_TTFT),
        ("forbidden model", &c.runs, FORBIDDEN),
    ];
    let root = SVGBackend::new(out, (1200, 1260)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (title, body) = root.split_vertically(50);
    title
        .titled(
            "modelgate load test: latency by percentile",
            ("sans-serif", 24),
        )
        .map_err(|e| err(&e))?;
    for (area, (caption, runs, series)) in body.split_evenly((3, 2)).iter().zip(panels) {
        let curves: Vec<(&str, Vec<(f64, f64)>)> = runs
            .iter()
            .map(|r| (r.label.as_str(), points(r, series)))
            .filter(|(_, p)| !p.is_empty())
            .collect();
        // Log scale: an overloaded target's seconds and a healthy one's
        // milliseconds stay readable on the same panel.
        let ys = || curves.iter().flat_map(|(_, p)| p.iter().map(|(_, y)| *y));
        let ymax = ys().fold(0.0f64, f64::max).max(0.1) * 1.2;
        let ymin = ys()
            .filter(|y| *y > 0.0)
            .fold(f64::INFINITY, f64::min)
            .clamp(0.01, ymax / 2.0)
            * 0.8;
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..4f64, (ymin..ymax).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| nines_label(*x))
            .x_desc("percentile")
            .y_desc("latency (ms, log)")
            .y_label_formatter(&|y| crate::stats::fmt_ms(*y))
            .draw()
            .map_err(|e| err(&e))?;
        for (i, (label, pts)) in curves.into_iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts, color.stroke_width(2)))
                .map_err(|e| err(&e))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert!((nines(0.9999) - 4.0).abs() < 1e-6);
        assert!((nines(1.0) - 4.0).abs() < 1e-6);
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(3.0), "99.9%");
    }
}
