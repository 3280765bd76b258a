//! The bar chart `docs/BENCHMARKS.md` embeds: rows/s per configuration (the best run of each),
//! Sluice's configurations in blue and the references measured in the same run (decode limit,
//! broker limit, the Python stack) in grey. Drawn with plotters into a PNG; the font (DejaVu
//! Sans, Debian's `fonts-dejavu-core`) is loaded at run time, so building needs no font library.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{rate, Meta};
use crate::Measurement;

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const SLUICE: RGBColor = RGBColor(31, 119, 180);
const REFERENCE: RGBColor = RGBColor(150, 150, 150);

fn short(id: &str) -> &str {
    match id {
        "decode" => "decode limit (Sluice's reader alone)",
        "python" => "python-mysql-replication",
        "stdout" => "pipeline → stdout",
        "filter-mask" => "filter+mask → stdout",
        "chain3" => "filter+mask+reshape → stdout",
        "broker" => "broker limit (rdkafka, msgs/s)",
        "kafka" => "pipeline → Kafka",
        "filter-mask-kafka" => "filter+mask → Kafka",
        "chain3-kafka" => "filter+mask+reshape → Kafka",
        other => other,
    }
}

fn register_font() -> Result<()> {
    let bytes = std::fs::read(FONT).with_context(|| {
        format!("the chart needs {FONT}: apt-get install fonts-dejavu-core (scripts/bench.sh does)")
    })?;
    // plotters keeps fonts for the whole process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{FONT} is not a font plotters can read"))
}

/// Draws `path`.
pub fn throughput(path: &Path, results: &[Measurement], meta: &Meta) -> Result<()> {
    register_font()?;
    let bars: Vec<(&str, f64, bool)> = results
        .iter()
        .filter_map(|m| {
            let r = m.best()?;
            let reference = matches!(m.id.as_str(), "decode" | "broker" | "python");
            Some((short(&m.id), r.rate(), reference))
        })
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let n = bars.len();
    let height = 130 + 46 * n as u32;
    let root = BitMapBackend::new(path, (1100, height)).into_drawing_area();
    let err = |e: DrawingAreaErrorKind<_>| anyhow!("drawing {}: {e:?}", path.display());
    root.fill(&WHITE).map_err(err)?;
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max) * 1.2;
    // The first measurement on top; `0..n - 1` is n slots (integer ranges include their end).
    let labels: Vec<&str> = bars.iter().rev().map(|b| b.0).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Sluice: rows/s per configuration ({}, sluice {})",
                meta.date, meta.revision
            ),
            ("sans-serif", 20),
        )
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(300)
        .build_cartesian_2d(0f64..max, (0..n - 1).into_segmented())
        .map_err(err)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .x_labels(8)
        .x_desc("rows/s (best run); grey: references measured in the same run")
        .x_label_formatter(&|v| if *v > 0.0 { rate(*v) } else { "0".into() })
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => labels.get(*i).map_or(String::new(), |s| (*s).to_owned()),
            _ => String::new(),
        })
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    let value_style =
        TextStyle::from(("sans-serif", 15).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (_, v, reference)) in bars.iter().enumerate() {
        let slot = n - 1 - i;
        let color = if *reference { REFERENCE } else { SLUICE };
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(slot)),
                (*v, SegmentValue::Exact(slot + 1)),
            ],
            color.filled(),
        );
        bar.set_margin(7, 7, 0, 0);
        chart.draw_series(std::iter::once(bar)).map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                format!("  {}", rate(*v)),
                (*v, SegmentValue::CenterOf(slot)),
                value_style.clone(),
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}
