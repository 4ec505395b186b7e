//! Time-series charts of a report, drawn as SVG by `plotters`: seconds
//! since the load began on the x axis, the migration's steps shaded, a
//! title, units on the y axis, and a legend. The text is SVG text, laid
//! out by the browser; no font is needed to draw them.

use plotters::prelude::*;

/// One line of a chart: a name for the legend, and a value per second
/// (`None` leaves a gap: nothing was measured in that second).
pub(super) struct Line {
    /// Its name in the legend.
    pub name: String,
    /// Seconds from the start of the load, and the value then.
    pub points: Vec<(f64, Option<f64>)>,
}

/// A chart to draw.
pub(super) struct Chart {
    /// Its title.
    pub title: String,
    /// What the y axis measures, with its unit.
    pub y_desc: String,
    /// Values drawn on a log scale (latencies that go from milliseconds to
    /// seconds).
    pub log: bool,
    /// How a value is labelled on the y axis.
    pub label: fn(f64) -> String,
    /// The end of the x axis, in seconds.
    pub end_s: f64,
    /// The lines.
    pub lines: Vec<Line>,
    /// The migration's steps: from their start to their end (or to the end
    /// of the transaction that held their locks).
    pub bands: Vec<(f64, f64)>,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
    RGBColor(140, 86, 75),
    RGBColor(127, 127, 127),
];

/// The migration's shading.
const BAND: RGBColor = RGBColor(255, 196, 120);

/// The smallest value a log-scale chart shows (in its unit).
const LOG_FLOOR: f64 = 0.01;

impl Chart {
    fn scaled(&self, v: f64) -> f64 {
        if self.log { v.max(LOG_FLOOR).log10() } else { v }
    }

    /// The y range, in drawn (scaled) units.
    fn range(&self) -> (f64, f64) {
        let values: Vec<f64> =
            self.lines.iter().flat_map(|l| l.points.iter().filter_map(|p| p.1)).map(|v| self.scaled(v)).collect();
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        match (self.log, values.is_empty()) {
            (_, true) => (0.0, 1.0),
            (true, false) => (min.floor(), max.ceil().max(min.floor() + 1.0)),
            (false, false) => (0.0, (max * 1.1).max(1.0)),
        }
    }

    /// Draws the chart as an SVG document.
    pub fn svg(&self, size: (u32, u32)) -> Result<String, String> {
        let mut svg = String::new();
        self.draw(&mut svg, size).map_err(|e| e.to_string())?;
        Ok(svg)
    }

    fn draw(&self, svg: &mut String, size: (u32, u32)) -> Result<(), Box<dyn std::error::Error + '_>> {
        let (lo, hi) = self.range();
        let root = SVGBackend::with_string(svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(&self.title, ("sans-serif", 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(72)
            .build_cartesian_2d(0f64..self.end_s.max(1.0), lo..hi)?;
        let label = self.label;
        let log = self.log;
        let y_label = move |v: &f64| label(if log { 10f64.powf(*v) } else { *v });
        chart
            .configure_mesh()
            .x_desc("seconds since the load began")
            .y_desc(self.y_desc.as_str())
            .y_label_formatter(&y_label)
            .y_labels(if log { ((hi - lo) as usize + 1).max(2) } else { 6 })
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        if !self.bands.is_empty() {
            let band = BAND.mix(0.45).filled();
            chart
                .draw_series(self.bands.iter().map(|(a, b)| Rectangle::new([(*a, lo), (b.max(a + 0.05), hi)], band)))?
                .label("migration step running")
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], band));
        }
        for (i, line) in self.lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let style = color.stroke_width(2);
            let mut first = true;
            for run in runs(&line.points) {
                let points = run.into_iter().map(|(x, y)| (x, self.scaled(y)));
                let drawn = chart.draw_series(LineSeries::new(points, style))?;
                if first {
                    drawn
                        .label(line.name.as_str())
                        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], style));
                    first = false;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.4))
            .label_font(("sans-serif", 13))
            .draw()?;
        root.present()?;
        Ok(())
    }
}

/// The points in runs without a gap; a lone point is drawn as a short
/// segment over its second.
fn runs(points: &[(f64, Option<f64>)]) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current = Vec::new();
    for (x, y) in points {
        match y {
            Some(y) => current.push((*x, *y)),
            None if !current.is_empty() => out.push(std::mem::take(&mut current)),
            None => {}
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    for run in &mut out {
        if let [(x, y)] = run[..] {
            *run = vec![(x - 0.4, y), (x + 0.4, y)];
        }
    }
    out
}
