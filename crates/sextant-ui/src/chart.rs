//! Chart series, shaped on the server so no chart ever ships raw history:
//! smoothing on the full-resolution series, then downsampling to about two
//! points per pixel while keeping each bucket's extremes (drawn as a band).

/// One point of a series: x (step, time or another metric) and y.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

/// One bucket of a downsampled series: where it is, the value drawn (the
/// bucket's last point, as a line chart shows what the series reached) and
/// the extremes inside it (the band).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub x: f64,
    pub y: f64,
    pub min: f64,
    pub max: f64,
}

/// How a series is smoothed before it is downsampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Smoothing {
    None,
    /// TensorBoard's debiased exponential moving average with weight
    /// `alpha` in `[0, 1)`: `m_i = α·m_{i-1} + (1-α)·y_i`, shown as
    /// `m_i / (1 - α^(i+1))` so the first points are not pulled to 0
    /// (TensorBoard `scalars/vz_line_chart2`, the same as W&B's "EMA").
    Ema(f64),
    /// The mean of the last `window` points (a trailing running mean).
    RunningMean(usize),
}

impl Smoothing {
    /// `ema:0.6`, `mean:10`, `none` (anything else is `None`).
    pub fn parse(text: &str) -> Smoothing {
        let (kind, value) = text.split_once(':').unwrap_or((text, ""));
        match kind {
            "ema" => match value.parse::<f64>() {
                Ok(alpha) if (0.0..1.0).contains(&alpha) => Smoothing::Ema(alpha),
                _ => Smoothing::None,
            },
            "mean" => match value.parse::<usize>() {
                Ok(window) if window > 1 => Smoothing::RunningMean(window.min(100_000)),
                _ => Smoothing::None,
            },
            _ => Smoothing::None,
        }
    }
}

/// Smooths `points` (ordered by x). Non-finite values pass through and do
/// not enter the average.
pub fn smooth(points: &[Point], smoothing: Smoothing) -> Vec<Point> {
    match smoothing {
        Smoothing::None => points.to_vec(),
        Smoothing::Ema(alpha) => {
            let mut last = 0.0;
            let mut count = 0i32;
            points
                .iter()
                .map(|point| {
                    if !point.y.is_finite() {
                        return *point;
                    }
                    last = last * alpha + (1.0 - alpha) * point.y;
                    count += 1;
                    let debias = 1.0 - alpha.powi(count);
                    Point {
                        x: point.x,
                        y: if debias > 0.0 { last / debias } else { point.y },
                    }
                })
                .collect()
        }
        Smoothing::RunningMean(window) => {
            let mut sum = 0.0;
            let mut kept: std::collections::VecDeque<f64> = std::collections::VecDeque::new();
            points
                .iter()
                .map(|point| {
                    if !point.y.is_finite() {
                        return *point;
                    }
                    kept.push_back(point.y);
                    sum += point.y;
                    if kept.len() > window {
                        sum -= kept.pop_front().unwrap_or(0.0);
                    }
                    Point {
                        x: point.x,
                        y: sum / kept.len() as f64,
                    }
                })
                .collect()
        }
    }
}

/// Downsamples `points` (ordered by x) to at most `buckets` buckets of
/// equal x width over `[x_min, x_max]`, each drawn as its first and its
/// last point (about two points per pixel when there is a bucket per
/// pixel) carrying the bucket's extremes as a band: min/max bucketing, as
/// W&B's "full fidelity" mode, so spikes are never lost (unlike random
/// sampling) and the line starts and ends where the series does. Series
/// that already fit are returned point by point. Non-finite values are
/// left out.
pub fn downsample(points: &[Point], buckets: usize, x_min: f64, x_max: f64) -> Vec<Bucket> {
    let finite = || points.iter().filter(|p| p.y.is_finite() && p.x.is_finite());
    let buckets = buckets.max(1);
    if finite().count() <= 2 * buckets || x_max <= x_min {
        return finite()
            .map(|p| Bucket {
                x: p.x,
                y: p.y,
                min: p.y,
                max: p.y,
            })
            .collect();
    }
    let width = (x_max - x_min) / buckets as f64;
    let mut out: Vec<Bucket> = Vec::with_capacity(2 * buckets);
    // The open bucket: its index, first point, last point, extremes.
    let mut open: Option<(usize, Point, Point, f64, f64)> = None;
    let close = |out: &mut Vec<Bucket>,
                 (_, first, last, min, max): (usize, Point, Point, f64, f64)| {
        out.push(Bucket {
            x: first.x,
            y: first.y,
            min,
            max,
        });
        if last.x != first.x || last.y != first.y {
            out.push(Bucket {
                x: last.x,
                y: last.y,
                min,
                max,
            });
        }
    };
    for point in finite() {
        let index = (((point.x - x_min) / width) as usize).min(buckets - 1);
        match &mut open {
            Some((at, _, last, min, max)) if *at == index => {
                *last = *point;
                *min = min.min(point.y);
                *max = max.max(point.y);
            }
            _ => {
                if let Some(done) = open.take() {
                    close(&mut out, done);
                }
                open = Some((index, *point, *point, point.y, point.y));
            }
        }
    }
    if let Some(done) = open {
        close(&mut out, done);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(ys: &[f64]) -> Vec<Point> {
        ys.iter()
            .enumerate()
            .map(|(i, &y)| Point { x: i as f64, y })
            .collect()
    }

    #[test]
    fn debiased_ema_matches_tensorboard() {
        // TensorBoard's smoothing of [1, 2, 3] with weight 0.5:
        // m = 0.5, 1.25, 2.125; debiased by 1 - 0.5^i = 0.5, 0.75, 0.875.
        let smoothed = smooth(&series(&[1.0, 2.0, 3.0]), Smoothing::Ema(0.5));
        let ys: Vec<f64> = smoothed.iter().map(|p| p.y).collect();
        let expected = [1.0, 1.25 / 0.75, 2.125 / 0.875];
        for (got, want) in ys.iter().zip(expected) {
            assert!((got - want).abs() < 1e-12, "{ys:?}");
        }
        // A constant series stays constant (no pull towards zero).
        let constant = smooth(&series(&[5.0; 10]), Smoothing::Ema(0.9));
        assert!(constant.iter().all(|p| (p.y - 5.0).abs() < 1e-9));
    }

    #[test]
    fn running_mean_is_trailing() {
        let smoothed = smooth(&series(&[1.0, 2.0, 3.0, 4.0]), Smoothing::RunningMean(2));
        let ys: Vec<f64> = smoothed.iter().map(|p| p.y).collect();
        assert_eq!(ys, vec![1.0, 1.5, 2.5, 3.5]);
    }

    #[test]
    fn downsampling_keeps_spikes_and_the_count_bound() {
        let mut ys = vec![0.0; 10_000];
        ys[4321] = 100.0;
        ys[8765] = -50.0;
        let points = series(&ys);
        let buckets = downsample(&points, 200, 0.0, 9_999.0);
        assert!(buckets.len() <= 400);
        assert_eq!(
            buckets.first().map(|b| b.x),
            Some(0.0),
            "starts where the series starts"
        );
        assert_eq!(
            buckets.last().map(|b| b.x),
            Some(9_999.0),
            "ends where it ends"
        );
        assert!(buckets.iter().any(|b| b.max == 100.0));
        assert!(buckets.iter().any(|b| b.min == -50.0));
        // Small series come back whole.
        assert_eq!(downsample(&series(&[1.0, 2.0]), 200, 0.0, 1.0).len(), 2);
        // Non-finite values are left out, not drawn.
        let holes = downsample(&series(&[1.0, f64::NAN, 3.0]), 10, 0.0, 2.0);
        assert_eq!(holes.len(), 2);
    }

    #[test]
    fn smoothing_specs_parse_or_fall_back() {
        assert_eq!(Smoothing::parse("ema:0.6"), Smoothing::Ema(0.6));
        assert_eq!(Smoothing::parse("mean:10"), Smoothing::RunningMean(10));
        assert_eq!(Smoothing::parse("ema:1.5"), Smoothing::None);
        assert_eq!(Smoothing::parse("gauss"), Smoothing::None);
    }
}
