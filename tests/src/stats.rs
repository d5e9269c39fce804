//! Measurements: [`Samples`] with percentiles, and [`Table`] for printing results.

use core::fmt;

/// A bag of measurements.
///
/// Percentiles use the nearest-rank method: the p-th percentile of n sorted values is the
/// value at rank `ceil(p/100 · n)` (1-based), so it is always one of the measurements.
///
/// ```
/// use dht_tests::stats::Samples;
///
/// let mut s = Samples::new();
/// for v in [15.0, 20.0, 35.0, 40.0, 50.0] {
///     s.push(v);
/// }
/// assert_eq!(s.percentile(30.0), Some(20.0));
/// assert_eq!(s.median(), Some(35.0));
/// assert_eq!(s.percentile(100.0), Some(50.0));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Samples {
    values: Vec<f64>,
    sorted: bool,
}

impl Samples {
    /// No measurements.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one measurement (NaN is ignored).
    pub fn push(&mut self, v: f64) {
        if !v.is_nan() {
            self.values.push(v);
            self.sorted = false;
        }
    }

    /// How many measurements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn sort(&mut self) {
        if !self.sorted {
            self.values.sort_by(f64::total_cmp);
            self.sorted = true;
        }
    }

    /// The p-th percentile (`0 < p <= 100`; `p <= 0` gives the minimum), `None` when empty.
    pub fn percentile(&mut self, p: f64) -> Option<f64> {
        self.sort();
        let n = self.values.len();
        if n == 0 {
            return None;
        }
        let rank = ((p / 100.0) * n as f64).ceil() as usize;
        self.values.get(rank.clamp(1, n) - 1).copied()
    }

    /// The median (50th percentile).
    pub fn median(&mut self) -> Option<f64> {
        self.percentile(50.0)
    }

    /// The mean, `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        if self.values.is_empty() {
            None
        } else {
            Some(self.values.iter().sum::<f64>() / self.values.len() as f64)
        }
    }

    /// The largest value.
    pub fn max(&self) -> Option<f64> {
        self.values.iter().copied().reduce(f64::max)
    }

    /// Count, mean, median, p90, p99 and max at once.
    pub fn summary(&mut self) -> Summary {
        Summary {
            count: self.len(),
            mean: self.mean(),
            median: self.median(),
            p90: self.percentile(90.0),
            p99: self.percentile(99.0),
            max: self.max(),
        }
    }
}

impl Extend<f64> for Samples {
    fn extend<T: IntoIterator<Item = f64>>(&mut self, iter: T) {
        for v in iter {
            self.push(v);
        }
    }
}

impl FromIterator<f64> for Samples {
    fn from_iter<T: IntoIterator<Item = f64>>(iter: T) -> Self {
        let mut s = Self::new();
        s.extend(iter);
        s
    }
}

/// The usual statistics of a [`Samples`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Summary {
    /// Number of measurements.
    pub count: usize,
    /// Arithmetic mean.
    pub mean: Option<f64>,
    /// 50th percentile.
    pub median: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

/// `v` with `decimals` decimals, or `-` when absent.
pub fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(v) => format!("{v:.decimals$}"),
        None => "-".to_string(),
    }
}

/// A table of text cells printed with aligned columns (numbers right-aligned), as plain text
/// or as Markdown.
///
/// ```
/// use dht_tests::stats::Table;
///
/// let mut t = Table::new(["metric", "value"]);
/// t.row(["success", "99.9 %"]);
/// t.row(["messages", "31"]);
/// assert_eq!(
///     t.to_string(),
///     "metric    value\n\
///      --------  ------\n\
///      success   99.9 %\n\
///      messages      31\n"
/// );
/// ```
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub fn new<I, S>(header: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row (missing cells print empty, extra cells are kept).
    pub fn row<I, S>(&mut self, cells: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.rows.push(cells.into_iter().map(Into::into).collect());
    }

    /// The rows so far.
    pub fn rows(&self) -> &[Vec<String>] {
        &self.rows
    }

    fn widths(&self) -> Vec<usize> {
        let cols = self
            .rows
            .iter()
            .map(Vec::len)
            .chain([self.header.len()])
            .max()
            .unwrap_or(0);
        (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .chain([&self.header])
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// The table as GitHub Markdown.
    pub fn to_markdown(&self) -> String {
        let widths: Vec<usize> = self.widths().into_iter().map(|w| w.max(3)).collect();
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            out.push('|');
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map_or("", String::as_str);
                let pad = w.saturating_sub(cell.chars().count());
                if c > 0 && is_numeric(cell) {
                    out.push_str(&format!(" {}{} |", " ".repeat(pad), cell));
                } else {
                    out.push_str(&format!(" {}{} |", cell, " ".repeat(pad)));
                }
            }
            out.push('\n');
        };
        line(&mut out, &self.header);
        out.push('|');
        for (c, w) in widths.iter().enumerate() {
            if c > 0 {
                out.push_str(&format!(" {}: |", "-".repeat(w - 1)));
            } else {
                out.push_str(&format!(" {} |", "-".repeat(*w)));
            }
        }
        out.push('\n');
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }
}

/// Whether a cell reads as a number (possibly with a unit after it), for right alignment.
fn is_numeric(cell: &str) -> bool {
    cell.chars()
        .next()
        .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
        && cell != "-"
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let widths = self.widths();
        let last = widths.len().saturating_sub(1);
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            for (c, w) in widths.iter().enumerate() {
                let cell = cells.get(c).map_or("", String::as_str);
                let pad = w.saturating_sub(cell.chars().count());
                let sep = if c == last { "" } else { "  " };
                if c > 0 && is_numeric(cell) {
                    write!(f, "{}{}{}", " ".repeat(pad), cell, sep)?;
                } else if c == last {
                    write!(f, "{cell}")?;
                } else {
                    write!(f, "{}{}{}", cell, " ".repeat(pad), sep)?;
                }
            }
            writeln!(f)
        };
        line(f, &self.header)?;
        let dashes: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        line(f, &dashes)?;
        for r in &self.rows {
            line(f, r)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        // The textbook example: 15, 20, 35, 40, 50.
        // p5 → rank ceil(0.25) = 1 → 15; p30 → ceil(1.5) = 2 → 20; p40 → 2 → 20;
        // p50 → ceil(2.5) = 3 → 35; p100 → 5 → 50.
        let mut s: Samples = [50.0, 40.0, 15.0, 35.0, 20.0].into_iter().collect();
        assert_eq!(s.percentile(5.0), Some(15.0));
        assert_eq!(s.percentile(30.0), Some(20.0));
        assert_eq!(s.percentile(40.0), Some(20.0));
        assert_eq!(s.percentile(50.0), Some(35.0));
        assert_eq!(s.percentile(100.0), Some(50.0));
        assert_eq!(s.percentile(0.0), Some(15.0));
        assert_eq!(s.mean(), Some(32.0));
        assert_eq!(s.max(), Some(50.0));
    }

    #[test]
    fn percentiles_of_1_to_100() {
        let mut s: Samples = (1..=100).map(f64::from).collect();
        let sum = s.summary();
        assert_eq!(sum.count, 100);
        assert_eq!(sum.median, Some(50.0));
        assert_eq!(sum.p90, Some(90.0));
        assert_eq!(sum.p99, Some(99.0));
        assert_eq!(sum.mean, Some(50.5));
        // Pushing after a query re-sorts. 101 values: p1 is rank ceil(1.01) = 2, the old
        // minimum; p0.5 is rank 1.
        s.push(0.5);
        assert_eq!(s.percentile(0.5), Some(0.5));
        assert_eq!(s.percentile(1.0), Some(1.0));
    }

    #[test]
    fn empty_and_nan() {
        let mut s = Samples::new();
        s.push(f64::NAN);
        assert!(s.is_empty());
        assert_eq!(s.median(), None);
        assert_eq!(s.summary().mean, None);
        assert_eq!(fmt_opt(None, 1), "-");
        assert_eq!(fmt_opt(Some(1.25), 1), "1.2");
    }

    #[test]
    fn markdown_table() {
        let mut t = Table::new(["what", "n"]);
        t.row(["a", "1"]);
        t.row(["bbbb", "-"]);
        assert_eq!(
            t.to_markdown(),
            "| what | n   |\n| ---- | --: |\n| a    |   1 |\n| bbbb | -   |\n"
        );
    }
}
